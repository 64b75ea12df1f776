// Package bspatch applies bsdiff patches as update_engine uses them: the classic "BSDIFF40" format (three
// bzip2 streams) and AOSP's "BSDF2" format, whose control, diff and extra streams are each stored raw, as
// bzip2 or as brotli. The old data is read through an io.ReaderAt and the new data streamed to an
// io.Writer, so memory stays small whatever the sizes. It is our own because the Go bsdiff libraries know
// only BSDIFF40 and hold both files in memory.
package bspatch

import (
	"bytes"
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/andybalholm/brotli"

	"github.com/romforge/romforge/internal/failure"
)

// Stream compressors of a BSDF2 patch.
const (
	None   = 0
	BZ2    = 1
	Brotli = 2
)

// FormatError reports a malformed patch.
type FormatError struct{ Msg string }

func (e *FormatError) Error() string { return "bspatch: " + e.Msg }

// Unwrap makes every FormatError an invalid-input failure.
func (e *FormatError) Unwrap() error { return failure.ErrInvalid }

func bad(format string, args ...any) error { return &FormatError{fmt.Sprintf(format, args...)} }

// Header is the fixed 32-byte patch header.
type Header struct {
	Format      string  // "BSDIFF40" or "BSDF2"
	Compressors [3]byte // control, diff, extra
	CtrlLen     int64
	DiffLen     int64
	NewSize     int64
}

// offtin decodes bsdiff's sign-magnitude little-endian 64-bit integer.
func offtin(b []byte) int64 {
	v := int64(binary.LittleEndian.Uint64(b) &^ (1 << 63))
	if b[7]&0x80 != 0 {
		return -v
	}
	return v
}

// PutOfftin encodes v in bsdiff's integer format (for tests and patch writers).
func PutOfftin(b []byte, v int64) {
	neg := v < 0
	if neg {
		v = -v
	}
	binary.LittleEndian.PutUint64(b, uint64(v))
	if neg {
		b[7] |= 0x80
	}
}

// ParseHeader reads and checks the header of patch.
func ParseHeader(patch []byte) (Header, error) {
	var h Header
	if len(patch) < 32 {
		return h, bad("patch of %d bytes is shorter than its 32-byte header", len(patch))
	}
	switch {
	case string(patch[:8]) == "BSDIFF40":
		h.Format, h.Compressors = "BSDIFF40", [3]byte{BZ2, BZ2, BZ2}
	case string(patch[:5]) == "BSDF2":
		h.Format = "BSDF2"
		copy(h.Compressors[:], patch[5:8])
		for _, c := range h.Compressors {
			if c > Brotli {
				return h, bad("unknown BSDF2 stream compressor %d", c)
			}
		}
	default:
		return h, bad("not a bsdiff patch (magic %q)", patch[:8])
	}
	h.CtrlLen, h.DiffLen, h.NewSize = offtin(patch[8:]), offtin(patch[16:]), offtin(patch[24:])
	rest := int64(len(patch) - 32)
	if h.CtrlLen < 0 || h.DiffLen < 0 || h.NewSize < 0 || h.CtrlLen > rest || h.DiffLen > rest-h.CtrlLen {
		return h, bad("header lengths (control %d, diff %d, new size %d) do not fit a %d-byte patch",
			h.CtrlLen, h.DiffLen, h.NewSize, len(patch))
	}
	return h, nil
}

func stream(c byte, b []byte) io.Reader {
	r := bytes.NewReader(b)
	switch c {
	case BZ2:
		return bzip2.NewReader(r)
	case Brotli:
		return brotli.NewReader(r)
	}
	return r
}

// Apply writes the new data that patch makes from old (oldSize bytes) to w and returns its size. The new size
// from the header must not exceed maxNew (pass the space the caller has for it); bytes of old outside
// [0, oldSize) read as zero, as in the original bspatch.
func Apply(old io.ReaderAt, oldSize int64, patch []byte, w io.Writer, maxNew int64) (int64, error) {
	h, err := ParseHeader(patch)
	if err != nil {
		return 0, err
	}
	if h.NewSize > maxNew {
		return 0, bad("patch makes %d bytes, only %d expected", h.NewSize, maxNew)
	}
	body := patch[32:]
	ctrl := stream(h.Compressors[0], body[:h.CtrlLen])
	diff := stream(h.Compressors[1], body[h.CtrlLen:h.CtrlLen+h.DiffLen])
	extra := stream(h.Compressors[2], body[h.CtrlLen+h.DiffLen:])

	const chunk = 64 << 10
	buf := make([]byte, chunk)
	obuf := make([]byte, chunk)
	var c [24]byte
	var newPos, oldPos int64
	read := func(r io.Reader, p []byte, what string) error {
		if _, err := io.ReadFull(r, p); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return bad("%s stream ends early at new offset %d", what, newPos)
			}
			var fe *FormatError
			if errors.As(err, &fe) {
				return err
			}
			return bad("%s stream: %v", what, err)
		}
		return nil
	}
	for newPos < h.NewSize {
		if err := read(ctrl, c[:], "control"); err != nil {
			return newPos, err
		}
		addLen, copyLen, seek := offtin(c[0:]), offtin(c[8:]), offtin(c[16:])
		if addLen < 0 || copyLen < 0 || addLen > h.NewSize-newPos || copyLen > h.NewSize-newPos-addLen {
			return newPos, bad("control entry (%d, %d, %d) at new offset %d runs past the new size %d", addLen, copyLen, seek, newPos, h.NewSize)
		}
		for addLen > 0 {
			n := min(addLen, chunk)
			p := buf[:n]
			if err := read(diff, p, "diff"); err != nil {
				return newPos, err
			}
			if err := readOld(old, oldSize, obuf[:n], oldPos); err != nil {
				return newPos, err
			}
			for i := range p {
				p[i] += obuf[i]
			}
			if _, err := w.Write(p); err != nil {
				return newPos, err
			}
			addLen -= n
			newPos += n
			oldPos += n
		}
		for copyLen > 0 {
			n := min(copyLen, chunk)
			if err := read(extra, buf[:n], "extra"); err != nil {
				return newPos, err
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return newPos, err
			}
			copyLen -= n
			newPos += n
		}
		if (seek > 0 && oldPos > 1<<62-seek) || (seek < 0 && oldPos < -1<<62-seek) {
			return newPos, bad("control seek %d overflows", seek)
		}
		oldPos += seek
	}
	return newPos, nil
}

// readOld fills p with old[off:], zero where outside the old data.
func readOld(old io.ReaderAt, size int64, p []byte, off int64) error {
	clear(p)
	lo, hi := max(off, 0), min(off+int64(len(p)), size)
	if lo >= hi {
		return nil
	}
	if _, err := old.ReadAt(p[lo-off:hi-off], lo); err != nil && !(errors.Is(err, io.EOF)) {
		return fmt.Errorf("bspatch: reading old data at %d: %w", lo, err)
	}
	return nil
}
