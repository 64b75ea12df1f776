package sparse

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
)

// FuzzReader feeds arbitrary bytes to NewReader and, when accepted, reads, verifies, lists and splits
// the image. Nothing may panic, and every rejection must be an ErrInvalid.
func FuzzReader(f *testing.F) {
	small := mixed(64*9+13, 21)
	for _, opt := range []WriteOptions{{BlockSize: 64}, {BlockSize: 64, DontCare: true}, {BlockSize: 64, CRC: true}, {BlockSize: 4}} {
		var buf bytes.Buffer
		if err := Write(f.Context(), &buf, image.New(bytes.NewReader(small), int64(len(small))), opt); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add(cat(header(16, 3, 3), chunk(ChunkRaw, 1, bytes.Repeat([]byte{7}, 16)), chunk(ChunkFill, 1, le32(0xabcd)), chunk(ChunkDontCare, 1, nil)))
	f.Add(cat(header(8, 4, 4), chunk(ChunkFill, 2, le32(5)), chunk(ChunkDontCare, 1, nil), chunk(ChunkRaw, 1, []byte("12345678")), chunk(ChunkCRC32, 0, le32(1))))
	f.Add(cat(header(4096, 1<<20, 1), chunk(ChunkFill, 1<<20, le32(0x11223344))))
	f.Add(header(4096, 0, 0))
	f.Add([]byte{0x3a, 0xff, 0x26, 0xed})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, failure.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		buf := make([]byte, 1<<16)
		if m.Size() <= 1<<22 {
			if _, err := io.CopyBuffer(io.Discard, image.Reader(m), buf); err != nil {
				t.Fatalf("reading accepted image: %v", err)
			}
		} else {
			for _, off := range []int64{0, m.Size() / 3, m.Size() - 100} {
				if _, err := m.ReadAt(buf[:100], off); err != nil {
					t.Fatalf("ReadAt(%d): %v", off, err)
				}
			}
		}
		// Expand checks CRC32 chunks as it goes: it fails only as invalid input, and what it writes is
		// what ReadAt reads.
		if m.Size() <= 1<<20 {
			dst := &memAt{b: make([]byte, m.Size())}
			err := m.Expand(t.Context(), dst, true, nil)
			if err != nil && !errors.Is(err, failure.ErrInvalid) {
				t.Fatalf("Expand: %v", err)
			}
			if err != nil && m.Verify(t.Context()) == nil {
				t.Fatalf("Expand refused (%v) what Verify accepts", err)
			}
			if err == nil {
				want := make([]byte, m.Size())
				if _, err := m.ReadAt(want, 0); err != nil && err != io.EOF {
					t.Fatal(err)
				}
				if !bytes.Equal(dst.b, want) {
					t.Fatal("Expand and ReadAt disagree")
				}
			}
		}
		if _, err := m.Chunks(); err != nil {
			t.Fatalf("Chunks of accepted image: %v", err)
		}
		if err := m.Verify(t.Context()); err != nil && !errors.Is(err, failure.ErrInvalid) {
			t.Fatalf("Verify: %v", err)
		}
		_ = m.Info()
		pieces, err := Split(m, 4096)
		if err != nil {
			return // limit too small for a large block size
		}
		for i := range pieces {
			n, err := pieces[i].WriteTo(io.Discard)
			if err != nil || n != pieces[i].Size() || n > 4096 {
				t.Fatalf("piece %d: %d of %d bytes: %v", i, n, pieces[i].Size(), err)
			}
		}
	})
}
