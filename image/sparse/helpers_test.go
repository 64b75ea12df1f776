package sparse

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/romforge/romforge/image"
)

// mixed returns a deterministic image of size bytes mixing random data, zero runs, fill runs, blocks
// that are almost uniform and runs of unaligned lengths, the shapes real partitions have.
func mixed(size int64, seed uint64) []byte {
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for off := int64(0); off < size; {
		n := min(size-off, int64(r.IntN(64)+1)*4096+int64(r.IntN(3))*int64(r.IntN(4096)))
		seg := b[off : off+n]
		switch r.IntN(6) {
		case 0, 1: // random data
			for i := 0; i+8 <= len(seg); i += 8 {
				binary.LittleEndian.PutUint64(seg[i:], r.Uint64())
			}
		case 2: // zeros: already
		case 3: // fill word
			v := r.Uint32()
			for i := 0; i+4 <= len(seg); i += 4 {
				binary.LittleEndian.PutUint32(seg[i:], v)
			}
		case 4: // zeros with one byte set per 4 KiB (not a fill)
			for i := 0; i < len(seg); i += 4096 {
				seg[i+r.IntN(min(4096, len(seg)-i))] = byte(r.IntN(255) + 1)
			}
		case 5: // 0xff (erased flash)
			for i := range seg {
				seg[i] = 0xff
			}
		}
		off += n
	}
	return b
}

func sha(b []byte) [32]byte { return sha256.Sum256(b) }

func fileSHA(t testing.TB, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func imageSHA(t testing.TB, img image.Image) [32]byte {
	t.Helper()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, image.Reader(img), make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// padded returns b zero-padded to whole blocks, the way libsparse expands a partial last block.
func padded(b []byte, bs int) []byte {
	if r := len(b) % bs; r != 0 {
		return append(bytes.Clone(b), make([]byte, bs-r)...)
	}
	return b
}

func encode(t testing.TB, src []byte, opt WriteOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(t.Context(), &buf, image.New(bytes.NewReader(src), int64(len(src))), opt); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func crcOf(b []byte) uint32 { return crc32.ChecksumIEEE(b) }
