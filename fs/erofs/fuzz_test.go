package erofs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
)

type memWriterAt struct{ b []byte }

func (m *memWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

func tinyTree(t testing.TB) *tree.Mem { return treeOf(1200) }

// treeOf is a small tree whose text file is n repetitions of a 12-byte line; the fuzz seeds use a
// short text (two blocks, still compressible across clusters) so each execution is quick.
func treeOf(n int) *tree.Mem {
	tr := tree.NewMem()
	m := tree.Meta{Mode: fs.ModeDir | 0o755}
	m.SetSELinux("u:object_r:system_file:s0")
	tr.Put("d", m, nil)
	f := tree.Meta{Mode: 0o644, UID: 1000}
	f.SetSELinux("u:object_r:system_file:s0")
	tr.Put("d/text", f, bytes.Repeat([]byte("hello erofs "), n))
	tr.Put("d/small", f, []byte("tail"))
	tr.Put("link", tree.Meta{Mode: fs.ModeSymlink | 0o777, Target: "d/text"}, nil)
	tr.Put("null", tree.Meta{Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Rdev: tree.Mkdev(1, 3)}, nil)
	return tr
}

// walkAll touches everything an image offers, as the CLI would.
func walkAll(f *FS) {
	n := 0
	fs.WalkDir(f, ".", func(p string, d fs.DirEntry, err error) error {
		if n++; n > 200 || err != nil {
			return fs.SkipAll
		}
		f.Meta(p)
		f.Xattrs(p)
		f.ReadLink(p)
		if fl, err := f.Open(p); err == nil {
			io.Copy(io.Discard, io.LimitReader(fl.(io.Reader), 256<<10))
			if ef, ok := fl.(*File); ok {
				ef.StoredLayout() // what a rebuild would copy from a hostile image
			}
			fl.Close()
		}
		return nil
	})
}

func FuzzErofs(f *testing.F) {
	for _, c := range []string{"", "lz4", "lz4hc"} {
		w := &memWriterAt{}
		if _, err := Write(f.Context(), w, treeOf(400), WriteOptions{Compression: c}); err != nil {
			f.Fatal(err)
		}
		f.Add(w.b)
	}
	if validators.Have("mkfs.erofs") {
		dir := f.TempDir()
		src := filepath.Join(dir, "src")
		os.MkdirAll(filepath.Join(src, "d"), 0o755)
		os.WriteFile(filepath.Join(src, "d", "text"), bytes.Repeat([]byte("hello erofs "), 400), 0o644)
		os.WriteFile(filepath.Join(src, "small"), []byte("tail"), 0o644)
		for _, args := range [][]string{{"-zlz4hc"}, {"-zlz4", "-Eztailpacking"}, {"--chunksize=4096"}, {"-zlz4hc", "-C16384"}} {
			img := filepath.Join(dir, "m.img")
			if _, err := validators.RunErr("mkfs.erofs", append(append([]string{"--quiet", "-T0"}, args...), img, src)...); err == nil {
				if b, err := os.ReadFile(img); err == nil {
					f.Add(b)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fsys, err := Open(image.New(bytes.NewReader(b), int64(len(b))))
		if err != nil {
			if !errors.Is(err, failure.ErrInvalid) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				t.Fatalf("Open error is not ErrInvalid: %v", err)
			}
			return
		}
		walkAll(fsys)
	})
}

func TestCorruptImages(t *testing.T) {
	w := &memWriterAt{}
	if _, err := Write(t.Context(), w, tinyTree(t), WriteOptions{Compression: "lz4"}); err != nil {
		t.Fatal(err)
	}
	good := w.b
	// every single-byte corruption of the metadata must give an error or a readable tree, never a panic
	for i := 1024; i < len(good); i += 7 {
		b := append([]byte(nil), good...)
		b[i] ^= 0xa5
		if fsys, err := Open(image.New(bytes.NewReader(b), int64(len(b)))); err == nil {
			walkAll(fsys)
		} else if !errors.Is(err, failure.ErrInvalid) {
			t.Fatalf("byte %d: %v is not ErrInvalid", i, err)
		}
	}
}

// TestMutatedImages feeds thousands of damaged images (truncated, overwritten runs, flipped bytes) to the
// reader with a watchdog: each must fail cleanly or read, never panic or hang.
func TestMutatedImages(t *testing.T) {
	var seeds [][]byte
	for _, c := range []string{"", "lz4", "lz4hc"} {
		w := &memWriterAt{}
		if _, err := Write(t.Context(), w, tinyTree(t), WriteOptions{Compression: c}); err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, w.b)
	}
	r := rand.New(rand.NewSource(2))
	for it := 0; it < 3000; it++ {
		b := append([]byte(nil), seeds[it%3]...)
		switch r.Intn(3) {
		case 0:
			b = b[:r.Intn(len(b))]
		case 1:
			i := r.Intn(len(b))
			r.Read(b[i:min(len(b), i+r.Intn(64))])
		default:
			for k := 0; k < 1+r.Intn(8); k++ {
				b[r.Intn(len(b))] = byte(r.Intn(256))
			}
		}
		done := make(chan error, 1)
		go func() {
			fsys, err := Open(image.New(bytes.NewReader(b), int64(len(b))))
			if err == nil {
				walkAll(fsys)
				if it%10 == 0 {
					// A rebuild over the damaged image copies what it can; errors are fine, panics not.
					Write(t.Context(), &memWriterAt{}, tree.NewOverlay(fsys), WriteOptions{Compression: "lz4hc", ReuseStored: true})
				}
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, failure.ErrInvalid) {
				t.Fatalf("iteration %d: Open error %v is not ErrInvalid", it, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("iteration %d: reader hung", it)
		}
	}
}
