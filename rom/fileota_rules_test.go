package rom

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/romforge/romforge/internal/failure"
)

// mzent is a zip entry with a mode.
type mzent struct {
	name, body string
	mode       fs.FileMode
}

func makeModeZip(t *testing.T, ents []mzent) *zip.Reader {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		h := &zip.FileHeader{Name: e.name, Method: zip.Store}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, e.body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	return zr
}

const script = UpdaterScriptPath

// Each broken file OTA fails with the kind and a message that names the entry (or script line) and the
// rule, in a few hundred bytes at most.
func TestFileOTARules(t *testing.T) {
	deep := "system/" + strings.Repeat("d/", 70) + "f"
	long := "system/" + strings.Repeat("x", 5000)
	for _, tc := range []struct {
		name string
		ents []mzent
		kind error
		want []string
	}{
		{"zip slip", []mzent{{script, "", 0}, {"system/../../x", "x", 0}}, failure.ErrRefused, []string{`"system/../../x"`, "escapes the output"}},
		{"zip slip outside system", []mzent{{script, "", 0}, {"system/a", "x", 0}, {"../../etc/passwd", "x", 0}}, failure.ErrRefused, []string{`"../../etc/passwd"`, "escapes"}},
		{"backslash slip", []mzent{{script, "", 0}, {"system/a", "x", 0}, {`..\..\x`, "x", 0}}, failure.ErrRefused, []string{"escapes"}},
		{"absolute", []mzent{{script, "", 0}, {"system/a", "x", 0}, {"/etc/x", "x", 0}}, failure.ErrRefused, []string{`"/etc/x"`, "absolute"}},
		{"duplicate", []mzent{{script, "", 0}, {"system/app/X", "x", 0}, {"system/app/X", "y", 0}}, failure.ErrInvalid, []string{`duplicate entry "system/app/X"`}},
		{"symlink with child", []mzent{{script, "", 0}, {"system/lib", "/vendor/lib", fs.ModeSymlink | 0o777}, {"system/lib/a.so", "x", 0}}, failure.ErrInvalid, []string{`"system/lib/a.so"`, `"system/lib"`, "symlink"}},
		{"file then dir", []mzent{{script, "", 0}, {"system/a", "x", 0}, {"system/a/b", "y", 0}}, failure.ErrInvalid, []string{`"system/a/b"`, `"system/a"`, "is a file"}},
		{"dir then file", []mzent{{script, "", 0}, {"system/a/b", "y", 0}, {"system/a", "x", 0}}, failure.ErrInvalid, []string{`"system/a"`, "directory"}},
		{"missing script", []mzent{{"system/build.prop", "x", 0}}, failure.ErrInvalid, []string{"updater-script"}},
		{"device node", []mzent{{script, "", 0}, {"system/dev/null", "", fs.ModeDevice | fs.ModeCharDevice | 0o666}}, failure.ErrInvalid, []string{`"system/dev/null"`, "file type"}},
		{"fifo", []mzent{{script, "", 0}, {"system/p", "", fs.ModeNamedPipe | 0o666}}, failure.ErrInvalid, []string{`"system/p"`, "file type"}},
		{"bad mode in script", []mzent{{script, `set_perm(0, 0, 0999, "/system/a");`, 0}, {"system/a", "x", 0}}, failure.ErrInvalid, []string{"line 1", "mode"}},
		{"deep nesting", []mzent{{script, "", 0}, {deep, "x", 0}}, failure.ErrInvalid, []string{"levels deep"}},
		{"long name", []mzent{{script, "", 0}, {long, "x", 0}}, failure.ErrInvalid, []string{"longer than"}},
		{"extract escapes", []mzent{{script, `package_extract_dir("../..", "/system");`, 0}, {"system/a", "x", 0}}, failure.ErrInvalid, []string{"line 1", `"../.."`}},
		{"extract nothing", []mzent{{script, `package_extract_dir("sys", "/system");`, 0}, {"system/a", "x", 0}}, failure.ErrInvalid, []string{"line 1", `"sys"`, "empty"}},
		{"symlink escapes", []mzent{{script, `symlink("x", "/system/../../etc/y");`, 0}, {"system/a", "x", 0}}, failure.ErrInvalid, []string{"line 1", "climbs"}},
	} {
		_, err := FileOTATree(makeModeZip(t, tc.ents))
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.kind)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %s", tc.name, err, w)
			}
		}
		if n := len(err.Error()); n > 500 {
			t.Errorf("%s: message of %d bytes", tc.name, n)
		}
	}
}

// Random trees of valid names always build, and every entry is in the tree with its type; random
// mutations of a name into a hostile one are refused, never accepted or panicking.
func TestFileOTARandomNames(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	seg := func() string { return []string{"app", "lib", "bin", "etc", "a.so", "b", "priv-app", "x y"}[r.IntN(8)] }
	for it := 0; it < 300; it++ {
		ents := []mzent{{script, `package_extract_dir("system", "/system");`, 0}}
		seen := map[string]bool{}
		var files []string
		for n := 1 + r.IntN(20); n > 0; n-- {
			// Files live in d<depth> directories so no file name is also a directory.
			name := "system"
			for d := r.IntN(5); d > 0; d-- {
				name += "/d" + seg()
			}
			name += "/f" + seg()
			if seen[name] {
				continue
			}
			seen[name] = true
			files = append(files, name)
			ents = append(ents, mzent{name, "data", 0})
		}
		tr, err := FileOTATree(makeModeZip(t, ents))
		if err != nil {
			t.Fatalf("%d: valid tree refused: %v", it, err)
		}
		for _, f := range files {
			m, err := tr.Meta(strings.TrimPrefix(f, "system/"))
			if err != nil || !m.Mode.IsRegular() {
				t.Fatalf("%d: %s: %v %v", it, f, m.Mode, err)
			}
		}
		// One hostile rewrite of one name.
		k := 1 + r.IntN(len(ents)-1)
		switch r.IntN(4) {
		case 0:
			ents[k].name = strings.Replace(ents[k].name, "system/", "system/../", 1)
		case 1:
			ents = append(ents, ents[k]) // duplicate
		case 2:
			ents = append(ents, mzent{ents[k].name + "/child", "x", 0}) // file used as a directory
		case 3:
			ents[k].name = "/" + ents[k].name
		}
		_, err = FileOTATree(makeModeZip(t, ents))
		if !errors.Is(err, failure.ErrInvalid) && !errors.Is(err, failure.ErrRefused) {
			t.Fatalf("%d: hostile rewrite accepted or wrongly kinded: %v", it, err)
		}
	}
}
