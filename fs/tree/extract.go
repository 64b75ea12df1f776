package tree

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
)

// ExtractStats counts what Extract wrote.
type ExtractStats struct {
	Files, Dirs, Symlinks int
	// Skipped are device nodes, FIFOs and sockets not created (only root may).
	Skipped int
	Bytes   int64
}

// Extract writes t under dir, which must exist and be empty. A tree read from a hostile image cannot
// write outside dir: every name is checked again (no empty, "." or ".." elements, no NUL), each parent
// must be a real directory Extract created (not a symlink the tree planted), and files are created with
// O_EXCL|O_NOFOLLOW. As root, owners, device nodes and extended attributes (SELinux labels,
// capabilities) are applied too.
func Extract(ctx context.Context, t Tree, dir string) (*ExtractStats, error) {
	st := &ExtractStats{}
	root := os.Geteuid() == 0
	type dirMode struct {
		path string
		mode os.FileMode
		mt   time.Time
	}
	var dirs []dirMode
	err := Walk(t, func(name string, m Meta) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if name == "." {
			dirs = append(dirs, dirMode{dir, m.Mode, m.ModTime})
			return nil
		}
		for _, el := range strings.Split(name, "/") {
			if el == "" || el == "." || el == ".." || strings.ContainsAny(el, "\\\x00") {
				return failure.Kinded(failure.ErrRefused, fmt.Errorf("refusing entry %.200q: %w", name, ErrEscape))
			}
		}
		host := filepath.Join(dir, filepath.FromSlash(name))
		if pst, err := os.Lstat(filepath.Dir(host)); err != nil || !pst.IsDir() {
			return failure.Kinded(failure.ErrRefused, fmt.Errorf("refusing entry %.200q: its parent is not a directory extraction created: %w", name, ErrEscape))
		}
		switch {
		case m.Mode.IsDir():
			if err := os.Mkdir(host, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, dirMode{host, m.Mode, m.ModTime})
			st.Dirs++
		case m.Mode&fs.ModeSymlink != 0:
			if err := os.Symlink(m.Target, host); err != nil {
				return err
			}
			st.Symlinks++
		case m.Mode.IsRegular():
			n, err := extractFile(ctx, t, name, host, m)
			if err != nil {
				return err
			}
			st.Files++
			st.Bytes += n
		default:
			if !root {
				st.Skipped++
				return nil
			}
			if err := hostMknod(host, UnixMode(m.Mode), m.Rdev); err != nil {
				return err
			}
		}
		if root {
			_ = os.Lchown(host, int(m.UID), int(m.GID))
			for k, v := range m.Xattrs {
				_ = hostLsetxattr(host, k, v)
			}
			if m.Mode&fs.ModeSymlink == 0 && !m.Mode.IsDir() {
				_ = os.Chmod(host, hostMode(m.Mode))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Directory modes last: a read-only directory would refuse its own children.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		_ = os.Chmod(d.path, hostMode(d.mode))
		_ = os.Chtimes(d.path, d.mt, d.mt)
	}
	return st, nil
}

// hostMode keeps the permission and special bits of an entry's mode.
func hostMode(m fs.FileMode) os.FileMode {
	return m & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

func extractFile(ctx context.Context, t Tree, name, host string, m Meta) (int64, error) {
	src, err := t.Open(name)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	f, err := os.OpenFile(host, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := safeio.CopyContext(ctx, f, src)
	if err != nil {
		f.Close()
		return n, err
	}
	if err := f.Chmod(hostMode(m.Mode)); err != nil {
		f.Close()
		return n, err
	}
	if err := f.Close(); err != nil {
		return n, err
	}
	_ = os.Chtimes(host, m.ModTime, m.ModTime)
	return n, nil
}
