// Package safeio reads lengths that come from untrusted headers without letting a hostile header decide
// how much memory is allocated up front.
package safeio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// chunk is how much is allocated before the bytes behind it have been proven to exist.
const chunk = 10 << 20

// ErrTooLarge reports a length beyond a caller's limit.
var ErrTooLarge = errors.New("length exceeds limit")

// ReadDataAt reads n bytes at off. Memory grows only as data is actually read, so a claimed length far
// beyond the end of r fails with io.ErrUnexpectedEOF after allocating at most what r holds plus one chunk.
func ReadDataAt(r io.ReaderAt, n uint64, off int64) ([]byte, error) {
	if int64(n) < 0 || int64(n) != int64(int(n)) {
		return nil, fmt.Errorf("safeio: length %d: %w", n, ErrTooLarge)
	}
	if n < chunk {
		buf := make([]byte, n)
		if _, err := r.ReadAt(buf, off); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return buf, nil
	}
	var out []byte
	buf := make([]byte, chunk)
	for n > 0 {
		m := min(uint64(chunk), n)
		if _, err := r.ReadAt(buf[:m], off); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		out = append(out, buf[:m]...)
		off += int64(m)
		n -= m
	}
	return out, nil
}

// ReadData reads n bytes from r with the same growth rule as ReadDataAt.
func ReadData(r io.Reader, n uint64) ([]byte, error) {
	if int64(n) < 0 {
		return nil, fmt.Errorf("safeio: length %d: %w", n, ErrTooLarge)
	}
	if n < chunk {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return buf, nil
	}
	var out []byte
	buf := make([]byte, chunk)
	for n > 0 {
		m := min(uint64(chunk), n)
		if _, err := io.ReadFull(r, buf[:m]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		out = append(out, buf[:m]...)
		n -= m
	}
	return out, nil
}

// SliceCap returns a capacity to preallocate for c elements of size elemSize, capped so that a hostile count
// cannot force a huge allocation; append grows past it when the elements really exist. It returns -1 when
// c is beyond any sane count (more than 1<<40 bytes in total).
func SliceCap(c, elemSize uint64) int {
	if elemSize == 0 {
		elemSize = 1
	}
	if c > (1<<40)/elemSize {
		return -1
	}
	if c*elemSize > chunk {
		return int(chunk / elemSize)
	}
	return int(c)
}

// CheckRange reports whether [off, off+n) lies within [0, size) without overflowing.
func CheckRange(off, n, size int64) error {
	if off < 0 || n < 0 || off > size || n > size-off {
		return fmt.Errorf("range [%d, +%d) outside 0..%d", off, n, size)
	}
	return nil
}

// ContextReader reads from r until ctx is done, then fails with ctx's error: long copies (whole
// partitions) stop at the next read when the user cancels.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return &ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// CopyContext copies r to w in 1 MiB reads until EOF, stopping with ctx's error at the next read once ctx
// is done: whole-image hashing and copying end within one read of a Ctrl-C.
func CopyContext(ctx context.Context, w io.Writer, r io.Reader) (int64, error) {
	return io.CopyBuffer(w, &ctxReader{ctx, r}, make([]byte, 1<<20))
}

// CString decodes a fixed-size, NUL-padded name field of an on-disk header: the bytes before the first
// NUL, or all of them when the field is full.
func CString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// AllZero reports whether b holds only zero bytes (padding, holes, zero blocks), eight bytes a step.
func AllZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
