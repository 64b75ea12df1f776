package erofs

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/internal/validators"
	"golang.org/x/sys/unix"
)

// materialize writes tr to dir with owners, modes, xattrs, links and device nodes (needs root).
func materialize(t *testing.T, tr tree.Tree, dir string) {
	t.Helper()
	links := map[uint64]string{}
	err := tree.Walk(tr, func(name string, m tree.Meta) error {
		p := filepath.Join(dir, name)
		switch {
		case name == ".":
		case m.Mode.IsDir():
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
		case m.Mode&fs.ModeSymlink != 0:
			if err := os.Symlink(m.Target, p); err != nil {
				return err
			}
		case m.Mode.IsRegular():
			if l, ok := links[m.Link]; ok && m.Link != 0 {
				return os.Link(l, p)
			}
			b, err := fs.ReadFile(tr, name)
			if err != nil {
				return err
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				return err
			}
			if m.Link != 0 {
				links[m.Link] = p
			}
		default:
			typ := uint32(unix.S_IFIFO)
			if m.Mode&fs.ModeCharDevice != 0 {
				typ = unix.S_IFCHR
			} else if m.Mode&fs.ModeDevice != 0 {
				typ = unix.S_IFBLK
			}
			if err := unix.Mknod(p, typ|0o600, int(m.Rdev)); err != nil {
				return err
			}
		}
		if err := os.Lchown(p, int(m.UID), int(m.GID)); err != nil {
			return err
		}
		if m.Mode&fs.ModeSymlink == 0 {
			if err := unix.Chmod(p, tree.UnixMode(m.Mode)&0o7777); err != nil {
				return err
			}
		}
		for k, v := range m.Xattrs {
			if err := unix.Lsetxattr(p, k, v, 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("materialize: %v", err)
	}
}

// getfattr returns `getfattr -R -d -m - -h .` output for dir with its per-file blocks sorted (the order
// follows readdir, which differs between filesystems).
func getfattr(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command("getfattr", "-R", "-d", "-m", "-", "-h", ".")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("getfattr: %v\n%s", err, out)
	}
	blocks := strings.Split(strings.TrimSpace(string(out)), "\n\n")
	sort.Strings(blocks)
	return strings.Join(blocks, "\n\n")
}

// TestMkfsImagesReadBack reads images that mkfs.erofs made from a tree with every entry type.
func TestMkfsImagesReadBack(t *testing.T) {
	validators.Root(t)
	mkfs := validators.Tool(t, "mkfs.erofs")
	src := filepath.Join(t.TempDir(), "src")
	os.Mkdir(src, 0o755)
	materialize(t, sampleTreeN(t, 200, 254), src)
	host := hostTree(t, src)
	for _, args := range [][]string{
		{},
		{"-zlz4"},
		{"-zlz4hc,12"},
		{"-zlz4hc", "-C65536"},
		{"-zlz4hc", "-Eztailpacking"},
		{"-zlz4", "-Elegacy-compress"},
		{"-zlz4hc", "-Eforce-inode-extended"},
		{"-Enoinline_data"},
		{"--chunksize=8192"},
		{"--chunksize=65536", "-Eforce-chunk-indexes"},
	} {
		t.Run(strings.Join(append([]string{"mkfs"}, args...), " "), func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "m.img")
			validators.Run(t, mkfs, append(append([]string{"-T1700000000", "--quiet"}, args...), img, src)...)
			compareTrees(t, host, openImage(t, img), cmpOpts{})
		})
	}
}

// TestWrittenImagesWithTools checks our images with fsck.erofs (check and extract), dump.erofs and the
// kernel (mount, then contents, owners, modes and getfattr output equal the source).
func TestWrittenImagesWithTools(t *testing.T) {
	validators.Root(t)
	validators.Tool(t, "fsck.erofs")
	tr := sampleTree(t, 1500)
	src := filepath.Join(t.TempDir(), "src")
	os.Mkdir(src, 0o755)
	materialize(t, tr, src)
	wantAttrs := getfattr(t, src)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			img := writeImage(t, tr, m.opt)
			validators.Run(t, "fsck.erofs", img)
			ex := filepath.Join(t.TempDir(), "x")
			validators.Run(t, "fsck.erofs", "--extract="+ex, img)
			compareTrees(t, tr, hostTree(t, ex), cmpOpts{contents: true})
			// dump.erofs 1.5 prints owners, mode and the xattr area size (not names): compare those.
			out := validators.Run(t, "dump.erofs", "--path=/bin/netd", img)
			in, err := openImage(t, img).lookup("t", "bin/netd", false)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"Uid: 0   Gid: 2000  Access: 0750", fmt.Sprintf("Xattr size: %d", in.in.xsize)} {
				if !strings.Contains(out, want) {
					t.Errorf("dump.erofs --path=/bin/netd lacks %q:\n%s", want, out)
				}
			}
			mnt := mountImage(t, img)
			compareTrees(t, tr, hostTree(t, mnt), cmpOpts{})
			if got := getfattr(t, mnt); got != wantAttrs {
				t.Errorf("getfattr on the mount differs from the source tree:\n%s\nwant\n%s", got, wantAttrs)
			}
		})
	}
}

// mountImage loop-mounts an EROFS image read-only with the kernel until the test ends (skipping the test
// when the kernel cannot).
func mountImage(t *testing.T, img string) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	if out, err := validators.RunErr("mount", "-t", "erofs", "-o", "loop,ro", img, mnt); err != nil {
		t.Skipf("kernel mount unavailable: %v %s", err, out)
	}
	t.Cleanup(func() { validators.RunErr("umount", mnt) })
	return mnt
}
