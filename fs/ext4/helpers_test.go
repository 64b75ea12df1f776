package ext4

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image"
)

func openImage(t testing.TB, path string) *FS {
	t.Helper()
	f, err := image.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fsys, err := Open(f)
	if err != nil {
		t.Fatalf("Open %s: %v", path, err)
	}
	return fsys
}

// ignoreLostFound skips the root lost+found that mke2fs and our writer add.
func ignoreLostFound(name string) bool { return name == "lost+found" }

// compareTrees compares every entry of want and got (names, types, modes, owners, xattrs, targets, device
// numbers, contents and hard-link grouping); entries for which skip returns true are ignored on both sides.
func compareTrees(t testing.TB, want, got tree.Tree, skip func(string) bool) {
	t.Helper()
	list := func(tr tree.Tree) map[string]tree.Meta {
		out := map[string]tree.Meta{}
		err := tree.Walk(tr, func(name string, m tree.Meta) error {
			if skip != nil && skip(name) {
				if m.Mode.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			out[name] = m
			return nil
		})
		if err != nil {
			t.Fatalf("walk: %v", err)
		}
		return out
	}
	w, g := list(want), list(got)
	var names []string
	for n := range w {
		names = append(names, n)
	}
	sort.Strings(names)
	for n := range g {
		if _, ok := w[n]; !ok {
			t.Errorf("%s: extra entry", n)
		}
	}
	linkW, linkG := map[uint64]string{}, map[uint64]string{}
	var errs []string
	for _, n := range names {
		wm, gm := w[n], g[n]
		gmOK := true
		if _, ok := g[n]; !ok {
			errs = append(errs, fmt.Sprintf("%s: missing", n))
			continue
		}
		_ = gmOK
		if wm.Mode != gm.Mode {
			errs = append(errs, fmt.Sprintf("%s: mode %v, want %v", n, gm.Mode, wm.Mode))
		}
		if wm.UID != gm.UID || wm.GID != gm.GID {
			errs = append(errs, fmt.Sprintf("%s: owner %d:%d, want %d:%d", n, gm.UID, gm.GID, wm.UID, wm.GID))
		}
		if !xattrsEqual(wm.Xattrs, gm.Xattrs) {
			errs = append(errs, fmt.Sprintf("%s: xattrs %q, want %q", n, gm.Xattrs, wm.Xattrs))
		}
		if wm.Target != gm.Target {
			errs = append(errs, fmt.Sprintf("%s: target %q, want %q", n, gm.Target, wm.Target))
		}
		if wm.Rdev != gm.Rdev {
			errs = append(errs, fmt.Sprintf("%s: rdev %#x, want %#x", n, gm.Rdev, wm.Rdev))
		}
		if wm.Mode.IsRegular() {
			if wm.Size != gm.Size {
				errs = append(errs, fmt.Sprintf("%s: size %d, want %d", n, gm.Size, wm.Size))
			} else if !sameContents(t, want, got, n) {
				errs = append(errs, fmt.Sprintf("%s: contents differ", n))
			}
			if (wm.Link != 0) != (gm.Link != 0) {
				errs = append(errs, fmt.Sprintf("%s: hard link %d, want %d", n, gm.Link, wm.Link))
			} else if wm.Link != 0 {
				a, okA := linkW[wm.Link]
				b, okB := linkG[gm.Link]
				if okA != okB || a != b {
					errs = append(errs, fmt.Sprintf("%s: hard-link group differs (%q vs %q)", n, a, b))
				}
				if !okA {
					linkW[wm.Link], linkG[gm.Link] = n, n
				}
			}
		}
	}
	if len(errs) > 0 {
		if len(errs) > 30 {
			errs = append(errs[:30], fmt.Sprintf("… and %d more", len(errs)-30))
		}
		t.Fatalf("trees differ:\n%s", strings.Join(errs, "\n"))
	}
	if len(names) == 0 {
		t.Fatal("compared empty trees")
	}
}

func xattrsEqual(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

func sameContents(t testing.TB, a, b fs.FS, name string) bool {
	ra, err := a.Open(name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer ra.Close()
	rb, err := b.Open(name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer rb.Close()
	bufA, bufB := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, errA := io.ReadFull(ra, bufA)
		nb, errB := io.ReadFull(rb, bufB)
		if na != nb || !bytes.Equal(bufA[:na], bufB[:nb]) {
			return false
		}
		if errA != nil || errB != nil {
			return (errA == io.EOF || errA == io.ErrUnexpectedEOF) && (errB == io.EOF || errB == io.ErrUnexpectedEOF)
		}
	}
}

// hostTree opens a host directory as a tree (owners and xattrs from the host).
func hostTree(t testing.TB, dir string) *tree.Dir {
	t.Helper()
	d, err := tree.NewDir(dir, tree.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, mode)
}

type bytesImage struct{ *bytes.Reader }

func (b bytesImage) Size() int64 { return b.Reader.Size() }

func memImage(b []byte) image.Image { return bytesImage{bytes.NewReader(b)} }
