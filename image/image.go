// Package image defines what every partition image in romforge is: bytes of known size readable at any
// offset. A raw file, the expanded view of a sparse file, a logical partition inside super and a partition
// decoded from a payload all satisfy Image, so readers of filesystems and writers of containers never care
// where the bytes come from.
package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/romforge/romforge/internal/safeio"
)

// Image is a partition image of known size.
type Image interface {
	io.ReaderAt
	Size() int64
}

type sized struct {
	io.ReaderAt
	n int64
}

func (s sized) Size() int64 { return s.n }

// New wraps r as an Image of size n.
func New(r io.ReaderAt, n int64) Image { return sized{r, n} }

// Section returns the n bytes of img starting at off, without copying.
func Section(img Image, off, n int64) Image {
	return sized{io.NewSectionReader(img, off, n), n}
}

// Reader returns a sequential reader over the whole image.
func Reader(img Image) *io.SectionReader { return io.NewSectionReader(img, 0, img.Size()) }

// File is an Image backed by an open file.
type File struct {
	*os.File
	size int64
}

// Size implements Image.
func (f *File) Size() int64 { return f.size }

// OpenFile opens path as a raw Image. Use sparse.Open to accept sparse files too.
func OpenFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s is a directory, not an image", path)
	}
	return &File{File: f, size: st.Size()}, nil
}

// Concat joins images end to end (e.g. the extents of a logical partition).
func Concat(parts ...Image) Image {
	c := &concat{}
	for _, p := range parts {
		c.offs = append(c.offs, c.size)
		c.parts = append(c.parts, p)
		c.size += p.Size()
	}
	return c
}

type concat struct {
	parts []Image
	offs  []int64
	size  int64
}

func (c *concat) Size() int64 { return c.size }

// KnownZero is true when every part the range touches knows its piece to be zeros.
func (c *concat) KnownZero(off, n int64) bool {
	if off < 0 || n < 0 || off+n > c.size {
		return false
	}
	for i, p := range c.parts {
		start, end := c.offs[i], c.offs[i]+p.Size()
		if end <= off || start >= off+n {
			continue
		}
		lo, hi := max(off, start), min(off+n, end)
		if !KnownZero(p, lo-start, hi-lo) {
			return false
		}
	}
	return true
}

func (c *concat) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("image: negative offset")
	}
	if off >= c.size {
		return 0, io.EOF
	}
	n := 0
	for i := range c.parts {
		if len(p) == 0 {
			break
		}
		start, end := c.offs[i], c.offs[i]+c.parts[i].Size()
		if off >= end {
			continue
		}
		rel := off - start
		want := min(int64(len(p)), end-off)
		m, err := c.parts[i].ReadAt(p[:want], rel)
		n += m
		if err != nil && !(errors.Is(err, io.EOF) && int64(m) == want) {
			return n, err
		}
		p = p[want:]
		off += want
	}
	if len(p) > 0 {
		return n, io.EOF
	}
	return n, nil
}

// Zero is an Image of n zero bytes.
func Zero(n int64) Image { return zeroImage{n} }

// ZeroKnower is implemented by images that know, without reading, that a range holds only zeros (holes
// in a composed image such as a super partition), so writers of sparse formats can skip them.
type ZeroKnower interface {
	// KnownZero reports whether [off, off+n) is known to read as zeros; false means "unknown".
	KnownZero(off, n int64) bool
}

// KnownZero reports whether img knows [off, off+n) to be zeros.
func KnownZero(img Image, off, n int64) bool {
	z, ok := img.(ZeroKnower)
	return ok && n >= 0 && off >= 0 && off+n <= img.Size() && z.KnownZero(off, n)
}

type zeroImage struct{ n int64 }

func (z zeroImage) Size() int64                 { return z.n }
func (z zeroImage) KnownZero(off, n int64) bool { return off >= 0 && off+n <= z.n }
func (z zeroImage) ReadAt(p []byte, off int64) (int, error) {
	return zeroReader(z).ReadAt(p, off)
}

type zeroReader struct{ n int64 }

func (z zeroReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= z.n {
		return 0, io.EOF
	}
	m := min(int64(len(p)), z.n-off)
	clear(p[:m])
	if m < int64(len(p)) {
		return int(m), io.EOF
	}
	return int(m), nil
}

// FileSHA256 hashes the file at path (raw bytes, as the manifest records them); it stops when ctx is done.
func FileSHA256(ctx context.Context, path string) (string, error) {
	f, err := OpenFile(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return SHA256(ctx, f)
}

// SHA256 hashes the whole image and returns the lowercase hex digest; it stops when ctx is done.
func SHA256(ctx context.Context, img Image) (string, error) {
	h := sha256.New()
	if _, err := safeio.CopyContext(ctx, h, Reader(img)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
