package sparse

import (
	"bytes"
	"errors"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/romforge/romforge/internal/failure"
)

// The algebraic fill CRC equals the table-driven CRC of the expanded bytes.
func TestCRCFill(t *testing.T) {
	for _, w := range []uint32{0, 1, 0xaabbccdd, 0xffffffff} {
		for _, n := range []int64{0, 4, 8, 4096, 4 << 20, 12<<20 + 4} {
			buf := make([]byte, n)
			fillPattern(buf, w, 0)
			for _, prev := range []uint32{0, 0x12345678} {
				want := crc32.Update(prev, crc32.IEEETable, buf)
				if got := crcFill(prev, w, n, nil); got != want {
					t.Errorf("w %#x n %d prev %#x: algebra %#x, table %#x", w, n, prev, got, want)
				}
				if got := crcFill(prev, w, n, make([]byte, directCRCLimit)); got != want {
					t.Errorf("w %#x n %d prev %#x: direct %#x, want %#x", w, n, prev, got, want)
				}
			}
		}
	}
}

// Regression (found by FuzzReader): a 56-byte file whose one FILL chunk expands to ~10 TB and whose
// header carries an image_checksum made Verify hash all 10 TB. It now answers at once.
func TestVerifyHugeFill(t *testing.T) {
	h := newHeader(0x303030, 0x303030, 1)
	h.ImageChecksum = 0x30303030
	b := make([]byte, FileHeaderSize)
	h.marshal(b)
	b = cat(b, chunk(ChunkFill, 0x303030, le32(0x11223344)))
	m, err := NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Size() < 1<<43 {
		t.Fatalf("size %d", m.Size())
	}
	err = m.Verify(t.Context())
	if !errors.Is(err, failure.ErrInvalid) || !strings.Contains(err.Error(), "image_checksum") {
		t.Fatalf("Verify: %v", err)
	}
}
