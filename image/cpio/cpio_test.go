package cpio

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
)

func sh(t *testing.T, script string) string {
	t.Helper()
	validators.Tool(t, "sh")
	return validators.Run(t, "sh", "-c", script)
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(validators.Fixtures(t), "boot", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The fixture ramdisk was made with `find . | sort | cpio -o -H newc -R 0:0 --reproducible`, then
// `gzip -n -9` and `lz4 -l -12`.
func TestFixtureRamdisks(t *testing.T) {
	validators.Tool(t, "cpio")
	fx := validators.Fixtures(t)
	list := strings.Fields(sh(t, "cpio -it --quiet < "+filepath.Join(fx, "boot/ramdisk.cpio")))
	want := map[string]Compression{"ramdisk.cpio": None, "ramdisk.cpio.gz": Gzip, "ramdisk.cpio.lz4": LZ4Legacy}
	for name, comp := range want {
		b := readFixture(t, name)
		r, err := ParseRamdisk(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Compression != comp {
			t.Errorf("%s: compression %s, want %s", name, r.Compression, comp)
		}
		if got := r.Files(); strings.Join(got, " ") != strings.Join(list, " ") {
			t.Errorf("%s: files %v, cpio -it lists %v", name, got, list)
		}
		rc, err := r.ReadFile("init.rc")
		if err != nil || !strings.Contains(string(rc), "mount_all fstab.qcom") {
			t.Errorf("%s: init.rc = %q, %v", name, rc, err)
		}
		if e := r.Lookup("/init"); e == nil || e.Mode != ModeRegular|0o750 || e.UID != 0 {
			t.Errorf("%s: /init entry %+v", name, e)
		}
		out, err := r.Bytes()
		if err != nil || !bytes.Equal(out, b) {
			t.Errorf("%s: unedited Bytes differs from the input (%v)", name, err)
		}
	}
}

// extract runs GNU cpio on an archive and returns the directory it extracted into.
func extract(t *testing.T, archive []byte) string {
	t.Helper()
	dir := t.TempDir()
	f := filepath.Join(t.TempDir(), "a.cpio")
	os.WriteFile(f, archive, 0o644)
	sh(t, fmt.Sprintf("cd %s && cpio -idm --quiet --no-absolute-filenames < %s", dir, f))
	return dir
}

// checkTree compares the regular files, directories and symlinks of an archive with a directory.
func checkTree(t *testing.T, a *Archive, dir string) {
	t.Helper()
	n := 0
	for _, e := range a.Entries {
		if e.IsTrailer() || clean(e.Name) == "." {
			continue
		}
		p := filepath.Join(dir, clean(e.Name))
		st, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", e.Name, err)
			continue
		}
		mode := uint32(st.Mode().Perm())
		switch {
		case st.IsDir():
			mode |= ModeDir
		case st.Mode()&os.ModeSymlink != 0:
			mode |= ModeSymlink
		case st.Mode().IsRegular():
			mode |= ModeRegular
		}
		if mode != e.Mode {
			t.Errorf("%s: mode %06o on disk, %06o in the archive", e.Name, mode, e.Mode)
		}
		switch {
		case e.IsRegular():
			b, _ := os.ReadFile(p)
			data, _ := a.ReadFile(e.Name)
			if !bytes.Equal(b, data) {
				t.Errorf("%s: contents differ", e.Name)
			}
		case e.IsSymlink():
			if l, _ := os.Readlink(p); l != string(e.Data) {
				t.Errorf("%s: link %q, archive %q", e.Name, l, e.Data)
			}
		}
		n++
	}
	if n < 3 {
		t.Fatalf("compared only %d entries", n)
	}
}

func makeTree(t *testing.T) string {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sbin"), 0o750)
	os.MkdirAll(filepath.Join(dir, "etc/init"), 0o755)
	os.WriteFile(filepath.Join(dir, "init"), []byte("#!fake init\n"), 0o750)
	os.WriteFile(filepath.Join(dir, "etc/init/cloud.rc"), []byte("service cloud /system/bin/cloud\n    class main\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "sbin/big"), randBytes(3, 70001), 0o700)
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600)
	os.Symlink("/init", filepath.Join(dir, "sbin/ueventd"))
	os.Chmod(filepath.Join(dir, "sbin"), 0o750)
	return dir
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestReadGNUCpio reads what GNU cpio writes in both supported formats.
func TestReadGNUCpio(t *testing.T) {
	validators.Tool(t, "cpio")
	tree := makeTree(t)
	for _, format := range []string{"newc", "crc"} {
		f := filepath.Join(t.TempDir(), "a.cpio")
		sh(t, fmt.Sprintf("cd %s && find . | sort | cpio -o -H %s --quiet > %s", tree, format, f))
		b, _ := os.ReadFile(f)
		a, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		checkTree(t, a, tree)
		if !bytes.Equal(a.Bytes(), b) {
			t.Errorf("%s: unedited archive not reproduced", format)
		}
		// Rewriting every header from the fields gives the same bytes (same case, same padding).
		for _, e := range a.Entries {
			e.dirty = true
		}
		a.changed = true
		if got := a.Bytes(); !bytes.Equal(got, b) {
			t.Errorf("%s: re-encoding every header differs at byte %d", format, firstDiff(got, b))
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestGNUReadsOurs builds an archive from scratch and extracts it with GNU cpio.
func TestGNUReadsOurs(t *testing.T) {
	validators.Tool(t, "cpio")
	a := New()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.AddDir("sbin", 0o750, 0, 2000))
	must(a.AddDir("etc", 0o755, 0, 0))
	must(a.AddFile("init", []byte("#!init\n"), 0o750, 0, 0))
	must(a.AddFile("etc/init.rc", []byte("on init\n"), 0o644, 0, 0))
	must(a.AddFile("sbin/big", randBytes(1, 5003), 0o700, 0, 0))
	must(a.AddSymlink("sbin/ueventd", "../init", 0, 0))
	if err := a.AddFile("nodir/x", nil, 0o644, 0, 0); !errors.Is(err, ErrNotExist) {
		t.Fatalf("adding below a missing directory: %v", err)
	}
	if err := a.AddFile("init", nil, 0o644, 0, 0); err == nil {
		t.Fatal("added a duplicate")
	}
	b := a.Bytes()
	f := filepath.Join(t.TempDir(), "ours.cpio")
	os.WriteFile(f, b, 0o644)
	names := strings.Fields(sh(t, "cpio -it --quiet < "+f))
	if strings.Join(names, " ") != "sbin etc init etc/init.rc sbin/big sbin/ueventd" {
		t.Fatalf("cpio -it lists %v", names)
	}
	checkTree(t, a, extract(t, b))
	back, err := Parse(b)
	if err != nil || !bytes.Equal(back.Bytes(), b) {
		t.Fatalf("re-reading our archive: %v", err)
	}
}

// TestEditKeepsOtherEntries replaces, removes and adds files in the fixture ramdisk: GNU cpio extracts
// the result, and every untouched entry's bytes are the same as in the input.
func TestEditKeepsOtherEntries(t *testing.T) {
	validators.Tool(t, "cpio")
	orig := readFixture(t, "ramdisk.cpio")
	a, err := Parse(bytes.Clone(orig))
	if err != nil {
		t.Fatal(err)
	}
	segments := func(b []byte) map[string][]byte {
		x, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string][]byte{}
		for _, e := range x.Entries {
			if !e.IsTrailer() {
				m[clean(e.Name)] = append(append([]byte(nil), e.raw...), e.Data...)
			}
		}
		return m
	}
	before := segments(orig)
	rc, _ := a.ReadFile("init.rc")
	newRC := append(bytes.Clone(rc), "\nservice cloudd /system/bin/cloudd\n    disabled\n"...)
	if err := a.Replace("init.rc", newRC); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove("default.prop"); err != nil {
		t.Fatal(err)
	}
	if err := a.AddFile("sbin/hardened", []byte("x"), 0o755, 0, 0); err != nil {
		t.Fatal(err)
	}
	out := a.Bytes()
	if len(out)%512 != 0 {
		t.Errorf("edited GNU-style archive is %d bytes, not padded to 512 as the input was", len(out))
	}
	after := segments(out)
	for name, seg := range before {
		switch name {
		case "init.rc":
			if bytes.Equal(after[name], seg) {
				t.Error("init.rc unchanged")
			}
		case "default.prop":
			if _, ok := after[name]; ok {
				t.Error("default.prop still there")
			}
		default:
			if !bytes.Equal(after[name], seg) {
				t.Errorf("%s: bytes changed by an edit elsewhere", name)
			}
		}
	}
	dir := extract(t, out)
	if b, _ := os.ReadFile(filepath.Join(dir, "init.rc")); !bytes.Equal(b, newRC) {
		t.Error("cpio extracts the old init.rc")
	}
	if _, err := os.Stat(filepath.Join(dir, "default.prop")); err == nil {
		t.Error("cpio extracts the removed default.prop")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "sbin/hardened")); string(b) != "x" {
		t.Error("cpio does not extract the added file")
	}
	if e := a.Lookup("init.rc"); e.Ino == 0 || e.Mtime == 0 {
		t.Errorf("replaced entry lost its fields: %+v", e)
	}
}

// TestCompressedEdits: an edited gzip or lz4 ramdisk is re-compressed in the same format, and gzip -d
// and lz4 -d give back the edited archive.
func TestCompressedEdits(t *testing.T) {
	for _, c := range []struct{ file, tool, cmd string }{
		{"ramdisk.cpio.gz", "gzip", "gzip -dc"},
		{"ramdisk.cpio.lz4", "lz4", "lz4 -dc"},
	} {
		validators.Tool(t, c.tool)
		orig := readFixture(t, c.file)
		r, err := ParseRamdisk(bytes.Clone(orig))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Replace("fstab.qcom", []byte("# emptied\n")); err != nil {
			t.Fatal(err)
		}
		out, err := r.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		again, err := r.Bytes()
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("%s: re-compression is not deterministic", c.file)
		}
		f := filepath.Join(t.TempDir(), "rd")
		os.WriteFile(f, out, 0o644)
		plain := sh(t, c.cmd+" "+f)
		if plain != string(r.Archive.Bytes()) {
			t.Fatalf("%s: %s of our output is not the edited archive", c.file, c.cmd)
		}
		back, err := ParseRamdisk(out)
		if err != nil || back.Compression != r.Compression {
			t.Fatalf("%s: re-read: %v", c.file, err)
		}
		if b, _ := back.ReadFile("fstab.qcom"); string(b) != "# emptied\n" {
			t.Fatalf("%s: edit lost", c.file)
		}
		if c.tool == "gzip" {
			zr, _ := gzip.NewReader(bytes.NewReader(out))
			zo, _ := gzip.NewReader(bytes.NewReader(orig))
			if zr.Header.OS != zo.Header.OS || zr.Header.Name != zo.Header.Name || !zr.Header.ModTime.Equal(zo.Header.ModTime) || out[8] != orig[8] {
				t.Errorf("gzip header fields not kept: %+v vs %+v", zr.Header, zo.Header)
			}
		}
	}
}

// TestLZ4Legacy: lz4 -d reads our multi-block legacy frames, and we read lz4 -l's.
func TestLZ4Legacy(t *testing.T) {
	validators.Tool(t, "lz4")
	data := bytes.Repeat(randBytes(5, 1<<16), 150) // 9.4 MiB: two blocks
	copy(data[3<<20:], randBytes(6, 1<<20))
	ours, err := CompressLZ4Legacy(data)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ours.lz4"), ours, 0o644)
	sh(t, fmt.Sprintf("lz4 -d -q -f %s/ours.lz4 %s/ours.out", dir, dir))
	if got, _ := os.ReadFile(filepath.Join(dir, "ours.out")); !bytes.Equal(got, data) {
		t.Fatal("lz4 -d of our legacy frame differs")
	}
	// The other way: an archive compressed by lz4 -l.
	tree := makeTree(t)
	sh(t, fmt.Sprintf("cd %s && find . | cpio -o -H newc --quiet | lz4 -l -q -c > %s/theirs.lz4", tree, dir))
	b, _ := os.ReadFile(filepath.Join(dir, "theirs.lz4"))
	r, err := ParseRamdisk(b)
	if err != nil || r.Compression != LZ4Legacy {
		t.Fatalf("reading lz4 -l output: %v", err)
	}
	checkTree(t, r.Archive, tree)
}

func TestHostileArchives(t *testing.T) {
	good := New()
	good.AddFile("a", []byte("hello"), 0o644, 0, 0)
	g := good.Bytes()
	hexField := func(b []byte, field int, v string) []byte {
		c := bytes.Clone(b)
		copy(c[6+8*field:], v)
		return c
	}
	lz := func(n uint32, rest ...byte) []byte {
		return append([]byte{0x02, 0x21, 0x4c, 0x18, byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)}, rest...)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	cases := map[string][]byte{
		"empty":          {},
		"short header":   g[:50],
		"bad magic":      append([]byte("070707"), g[6:]...),
		"odc format":     append([]byte("070707"), bytes.Repeat([]byte("0"), 200)...),
		"bad hex":        hexField(g, 0, "0000000g"),
		"namesize huge":  hexField(g, 11, "7fffffff"),
		"namesize 0":     hexField(g, 11, "00000000"),
		"filesize huge":  hexField(g, 6, "ffffffff"),
		"truncated data": g[:120],
		"lz4 block huge": lz(0x7fffffff, 1, 2, 3, 4, 5),
		"lz4 garbage":    lz(5, 0xff, 0xff, 0xff, 0xff, 0xff),
		"gzip truncated": gz.Bytes()[:len(gz.Bytes())/2],
		"gzip bomb":      gz.Bytes(),
		"xz":             {0xfd, '7', 'z', 'X', 'Z', 0, 1},
		"zstd":           {0x28, 0xb5, 0x2f, 0xfd, 1},
		"random":         randBytes(9, 300),
		"gzip not a cpio": func() []byte {
			var b bytes.Buffer
			w := gzip.NewWriter(&b)
			w.Write([]byte("hello"))
			w.Close()
			return b.Bytes()
		}(),
	}
	defer func(old int64) { MaxRamdiskSize = old }(MaxRamdiskSize)
	MaxRamdiskSize = 1 << 19
	for name, b := range cases {
		_, err := ParseRamdisk(b)
		if err == nil || !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestRemoveDirectory(t *testing.T) {
	a, err := Parse(readFixture(t, "ramdisk.cpio"))
	if err != nil {
		t.Fatal(err)
	}
	a.AddFile("sbin/x", []byte("1"), 0o755, 0, 0)
	if err := a.Remove("/sbin"); err != nil {
		t.Fatal(err)
	}
	for _, n := range a.Files() {
		if strings.Contains(n, "sbin") {
			t.Errorf("%s survived removing sbin", n)
		}
	}
	if err := a.Remove("nope"); !errors.Is(err, ErrNotExist) {
		t.Errorf("removing a missing file: %v", err)
	}
	names := a.Files()
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	if strings.Join(names, ",") != strings.Join(sorted, ",") {
		t.Errorf("order changed: %v", names)
	}
}

func FuzzCpio(f *testing.F) {
	a := New()
	a.AddDir("d", 0o755, 0, 0)
	a.AddFile("d/f", []byte("data"), 0o644, 1, 2)
	a.AddSymlink("l", "d/f", 0, 0)
	plain := a.Bytes()
	f.Add(plain)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	f.Add(append(gz.Bytes(), 0, 0, 0, 0))
	lz, _ := CompressLZ4Legacy(plain)
	f.Add(lz)
	f.Add(append(bytes.Clone(plain), plain...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRamdisk(b)
		if err != nil {
			if !errors.Is(err, failure.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		out, err := r.Bytes()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("unedited ramdisk not reproduced (%v)", err)
		}
		// Re-encoding every header from its fields must give an archive that reads back the same.
		for _, e := range r.Entries {
			e.dirty = true
		}
		re := r.Archive.Bytes()
		back, err := Parse(re)
		if err != nil {
			t.Fatalf("re-encoded archive does not parse: %v", err)
		}
		if len(back.Entries) != len(r.Entries) {
			t.Fatalf("%d entries, re-read %d", len(r.Entries), len(back.Entries))
		}
		for i, e := range back.Entries {
			o := r.Entries[i]
			if e.Name != o.Name || e.Mode != o.Mode || e.Ino != o.Ino || e.Mtime != o.Mtime || !bytes.Equal(e.Data, o.Data) {
				t.Fatalf("entry %d: %+v re-read as %+v", i, o, e)
			}
		}
	})
}
