package ext4

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"testing"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
)

// tinyImage is a 128 KiB mke2fs image (1 KiB blocks, metadata_csum, inline_data, 64bit, xattrs, hard link,
// fast and slow symlinks), stored gzipped.
func tinyImage(t testing.TB) []byte {
	t.Helper()
	f, err := os.Open("testdata/tiny.img.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exercise reads everything in an image the way the CLI does; it must never panic or loop.
func exercise(b []byte) error { return exerciseImage(memImage(b)) }

func exerciseImage(img image.Image) error {
	fsys, err := Open(img)
	if err != nil {
		return err
	}
	_ = fsys.Info()
	count := 0
	return tree.Walk(fsys, func(name string, m tree.Meta) error {
		if count++; count > 10000 {
			return errors.New("too many entries")
		}
		switch {
		case m.Mode.IsRegular():
			f, err := fsys.Open(name)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(io.Discard, io.LimitReader(f, 1<<20))
			return err
		case m.Mode&fs.ModeSymlink != 0:
			_, err := fsys.ReadLink(name)
			return err
		}
		return nil
	})
}

func FuzzExt4(f *testing.F) {
	img := tinyImage(f)[:33<<10] // blocks past 32 are free (zero)
	f.Add(img)
	// A few targeted corruptions as extra seeds: superblock counts, group descriptor, an inode table block.
	for _, off := range []int{1024 + 4, 1024 + 40, 2048 + 8, 5 * 1024, 6*1024 + 300} {
		c := bytes.Clone(img)
		c[off] ^= 0x5a
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Seeds are the used prefix of the image (short inputs keep the fuzzer's minimizer fast); the rest
		// reads as zeros without being allocated for every execution.
		if err := exerciseImage(zeroPadded{b, max(int64(len(b)), 128<<10)}); err != nil && !errors.Is(err, failure.ErrInvalid) && !errors.Is(err, fs.ErrNotExist) {
			// Errors from io/fs paths (not found, invalid path) are fine too; anything else must be ErrInvalid.
			var pe *fs.PathError
			if !errors.As(err, &pe) {
				t.Fatalf("error is not ErrInvalid: %v", err)
			}
		}
	})
}

// zeroPadded is b followed by zeros up to size bytes.
type zeroPadded struct {
	b    []byte
	size int64
}

func (z zeroPadded) Size() int64 { return z.size }

func (z zeroPadded) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= z.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.size-off))
	k := 0
	if off < int64(len(z.b)) {
		k = copy(p[:n], z.b[off:])
	}
	clear(p[k:n])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func TestTinyImage(t *testing.T) {
	if err := exercise(tinyImage(t)); err != nil {
		t.Fatal(err)
	}
	fsys, err := Open(memImage(tinyImage(t)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := fsys.Meta("d/hello")
	if err != nil || m.SELinux() != "u:object_r:system_file:s0" || m.Link == 0 {
		t.Fatalf("d/hello: %+v %v", m, err)
	}
	b, err := fs.ReadFile(fsys, "d/hard")
	if err != nil || string(b) != "hello\n" {
		t.Fatalf("d/hard = %q, %v", b, err)
	}
}
