package erofs

import (
	"bytes"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/romforge/romforge/fs/tree"
)

type cmpOpts struct {
	mtime     bool // compare modification times
	labelsNUL bool // compare security.selinux only without its trailing NUL
	noXattrs  bool
	rootMeta  bool // compare the root directory's metadata too
	contents  bool // compare only types and contents (fsck.erofs --extract output)
}

func names(t *testing.T, tr tree.Tree) []string {
	t.Helper()
	var out []string
	if err := fs.WalkDir(tr, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		out = append(out, p)
		return nil
	}); err != nil {
		t.Fatalf("walk: %v", err)
	}
	return out
}

func readAll(t *testing.T, tr tree.Tree, name string) []byte {
	t.Helper()
	f, err := tr.Open(name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

func normXattrs(x map[string][]byte, o cmpOpts) map[string]string {
	out := map[string]string{}
	for k, v := range x {
		if o.labelsNUL && k == tree.XattrSELinux {
			v = bytes.TrimRight(v, "\x00")
		}
		out[k] = string(v)
	}
	return out
}

// compareTrees checks that got holds exactly want's entries with the same metadata and contents.
func compareTrees(t *testing.T, want, got tree.Tree, o cmpOpts) {
	t.Helper()
	wn, gn := names(t, want), names(t, got)
	t.Logf("comparing %d entries", len(wn))
	if !slices.Equal(wn, gn) {
		t.Fatalf("names differ:\nwant %v\ngot  %v", wn, gn)
	}
	links := map[uint64]uint64{}
	for _, n := range wn {
		wm, err := want.Meta(n)
		if err != nil {
			t.Fatal(err)
		}
		gm, err := got.Meta(n)
		if err != nil {
			t.Fatalf("meta %s: %v", n, err)
		}
		if n == "." && !o.rootMeta {
			continue
		}
		if o.contents {
			if wm.Mode.Type() != gm.Mode.Type() {
				t.Errorf("%s: type %v vs %v", n, wm.Mode.Type(), gm.Mode.Type())
			}
			if wm.Mode.IsRegular() && !bytes.Equal(readAll(t, want, n), readAll(t, got, n)) {
				t.Errorf("%s: contents differ", n)
			}
			continue
		}
		if wm.Mode != gm.Mode || wm.UID != gm.UID || wm.GID != gm.GID || wm.Target != gm.Target || wm.Rdev != gm.Rdev {
			t.Errorf("%s: meta want mode %v uid %d gid %d target %q rdev %d; got %v %d %d %q %d", n,
				wm.Mode, wm.UID, wm.GID, wm.Target, wm.Rdev, gm.Mode, gm.UID, gm.GID, gm.Target, gm.Rdev)
		}
		if o.mtime && !wm.ModTime.Equal(gm.ModTime) {
			t.Errorf("%s: mtime want %v got %v", n, wm.ModTime, gm.ModTime)
		}
		if !o.noXattrs {
			if w, g := normXattrs(wm.Xattrs, o), normXattrs(gm.Xattrs, o); !maps.Equal(w, g) {
				t.Errorf("%s: xattrs want %q got %q", n, w, g)
			}
		}
		if (wm.Link != 0) != (gm.Link != 0) {
			t.Errorf("%s: hard link want %d got %d", n, wm.Link, gm.Link)
		} else if wm.Link != 0 {
			if prev, ok := links[wm.Link]; ok && prev != gm.Link {
				t.Errorf("%s: hard link group differs", n)
			}
			links[wm.Link] = gm.Link
		}
		if wm.Mode.IsRegular() {
			if wm.Size != gm.Size {
				t.Errorf("%s: size want %d got %d", n, wm.Size, gm.Size)
			}
			if w, g := readAll(t, want, n), readAll(t, got, n); !bytes.Equal(w, g) {
				t.Errorf("%s: contents differ (%d vs %d bytes)", n, len(w), len(g))
			}
		}
	}
	_ = strings.TrimSpace
}
