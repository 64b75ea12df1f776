package xiaomi

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
	"github.com/romforge/romforge/progress"
)

// unsafeName reports archive names that could write outside the destination.
func unsafeName(n string) bool {
	if strings.HasPrefix(n, "/") || strings.HasPrefix(n, `\`) || filepath.IsAbs(n) || strings.Contains(n, `\`) || (len(n) > 1 && n[1] == ':') {
		return true
	}
	for _, el := range strings.Split(n, "/") {
		if el == ".." {
			return true
		}
	}
	return false
}

// Extract streams the archive r (.tgz or .tar) and writes the regular files under the ROM root whose
// root-relative names want accepts (nil: all) into dir, keeping their relative paths. Names with "..",
// absolute names and links pointing outside the root refuse the whole archive (failure.ErrRefused); a
// file is written to a temporary name and renamed only when complete.
func Extract(ctx context.Context, r io.Reader, root, dir string, want func(rel string) bool, rep progress.Reporter) error {
	rep = progress.OrDiscard(rep)
	s, _, err := tarStream(r)
	if err != nil {
		return err
	}
	tr := tar.NewReader(s)
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return invalid("reading the archive: %v", err)
		}
		if n >= maxEntries {
			return invalid("more than %d entries", maxEntries)
		}
		if unsafeName(h.Name) {
			return failure.Kinded(failure.ErrRefused, fmt.Errorf("xiaomi: archive entry %q escapes the destination; refusing to extract this archive", h.Name))
		}
		name := path.Clean(h.Name)
		if h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink {
			escapes := unsafeName(h.Linkname)
			if h.Typeflag == tar.TypeSymlink && !strings.HasPrefix(h.Linkname, "/") {
				t := path.Clean(path.Join(path.Dir(name), h.Linkname))
				escapes = t == ".." || strings.HasPrefix(t, "../")
			}
			if escapes {
				return failure.Kinded(failure.ErrRefused, fmt.Errorf("xiaomi: archive link %q → %q points outside the ROM; refusing to extract this archive", h.Name, h.Linkname))
			}
			continue // links are never created
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		rel := name
		if root != "" {
			var ok bool
			if rel, ok = strings.CutPrefix(name, root+"/"); !ok {
				continue
			}
		}
		if want != nil && !want(rel) {
			continue
		}
		if err := writeFile(ctx, dir, rel, tr, h.Size, rep); err != nil {
			return err
		}
	}
}

func writeFile(ctx context.Context, dir, rel string, r io.Reader, size int64, rep progress.Reporter) (err error) {
	dst := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	// Never write through a symlink that already sits in the destination.
	for p := filepath.Dir(dst); len(p) > len(filepath.Clean(dir)); p = filepath.Dir(p) {
		if st, err := os.Lstat(p); err == nil && st.Mode()&fs.ModeSymlink != 0 {
			return failure.Kinded(failure.ErrRefused, fmt.Errorf("xiaomi: %s is a symlink; refusing to extract through it", p))
		}
	}
	if st, err := os.Lstat(dst); err == nil && st.Mode()&fs.ModeSymlink != 0 {
		return failure.Kinded(failure.ErrRefused, fmt.Errorf("xiaomi: %s is a symlink; refusing to overwrite it", dst))
	}
	f, err := safeio.Create(dst)
	if err != nil {
		return err
	}
	task := rep.Task("extract "+rel, size)
	defer func() {
		task.Done(err)
		f.Abort() // after Commit: nothing
	}()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, err := f.Write(buf[:n]); err != nil {
				return err
			}
			task.Add(int64(n))
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return invalid("reading %s: %v", rel, rerr)
		}
	}
	return f.Commit()
}
