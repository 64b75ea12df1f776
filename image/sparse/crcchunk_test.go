package sparse

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/romforge/romforge/internal/failure"
)

// memAt is a fixed-size in-memory WriterAt.
type memAt struct{ b []byte }

func (m *memAt) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, errors.New("write outside the image")
	}
	return copy(m.b[off:], p), nil
}

// crcFile builds a random sparse file of raw, fill and hole chunks with CRC32 chunks at random places
// and always last, each carrying the CRC of the expanded bytes before it (as libsparse's reader sums).
// It returns the file, the expanded image and the file offsets of raw data, fill values and CRC values.
func crcFile(r *rand.Rand, bs uint32) (file, want []byte, rawAt, fillAt, crcAt []int) {
	var chunks [][]byte
	var blocks uint32
	off := FileHeaderSize
	add := func(c []byte) {
		chunks = append(chunks, c)
		off += len(c)
	}
	addCRC := func() {
		crcAt = append(crcAt, off+ChunkHeaderSize)
		add(chunk(ChunkCRC32, 0, le32(crc32.ChecksumIEEE(want))))
	}
	for n := 1 + r.IntN(12); n > 0; n-- {
		k := uint32(1 + r.IntN(5))
		switch r.IntN(4) {
		case 0:
			data := make([]byte, k*bs)
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			rawAt = append(rawAt, off+ChunkHeaderSize)
			add(chunk(ChunkRaw, k, data))
			want = append(want, data...)
		case 1:
			v := r.Uint32()
			fillAt = append(fillAt, off+ChunkHeaderSize)
			add(chunk(ChunkFill, k, le32(v)))
			p := make([]byte, k*bs)
			fillPattern(p, v, 0)
			want = append(want, p...)
		case 2:
			add(chunk(ChunkDontCare, k, nil))
			want = append(want, make([]byte, k*bs)...)
		default:
			addCRC()
			continue
		}
		blocks += k
	}
	addCRC()
	file = cat(header(bs, blocks, uint32(len(chunks))), cat(chunks...))
	return file, want, rawAt, fillAt, crcAt
}

func expandMem(m *Image) ([]byte, error) {
	dst := &memAt{b: make([]byte, m.Size())}
	err := m.Expand(context.Background(), dst, true, nil)
	return dst.b, err
}

// Good files expand and open; any change to raw data, a fill value or a CRC value is an invalid-input
// error from Expand and from OpenContext.
func TestCRCChunksChecked(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	dir := t.TempDir()
	for it := 0; it < 300; it++ {
		bs := uint32(4 * (1 + r.IntN(64)))
		file, want, rawAt, fillAt, crcAt := crcFile(r, bs)
		m, err := NewReader(bytes.NewReader(file), int64(len(file)))
		if err != nil {
			t.Fatalf("%d: %v", it, err)
		}
		got, err := expandMem(m)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%d: good file: %v (equal %v)", it, err, bytes.Equal(got, want))
		}
		if err := m.Verify(context.Background()); err != nil {
			t.Fatalf("%d: Verify of a good file: %v", it, err)
		}
		var targets []int
		for _, o := range rawAt {
			targets = append(targets, o+r.IntN(int(bs)))
		}
		for _, o := range append(fillAt, crcAt...) {
			targets = append(targets, o+r.IntN(4))
		}
		at := targets[r.IntN(len(targets))]
		bad := bytes.Clone(file)
		bad[at] ^= byte(1 + r.IntN(255))
		m, err = NewReader(bytes.NewReader(bad), int64(len(bad)))
		if err != nil {
			t.Fatalf("%d: a payload byte change broke the structure: %v", it, err)
		}
		if _, err := expandMem(m); !errors.Is(err, failure.ErrInvalid) {
			t.Fatalf("%d: byte %d changed, Expand: %v", it, at, err)
		}
		p := filepath.Join(dir, "bad.simg")
		os.WriteFile(p, bad, 0o644)
		if _, c, err := OpenContext(context.Background(), p); !errors.Is(err, failure.ErrInvalid) {
			if c != nil {
				c.Close()
			}
			t.Fatalf("%d: byte %d changed, Open: %v", it, at, err)
		}
	}
}

// A CRC32 chunk after a terabyte of holes and fills is checked arithmetically: at once.
func TestCRCAfterHugeHoles(t *testing.T) {
	const blocks = 1 << 28 // 1 TiB of 4 KiB blocks
	pat := make([]byte, 4096)
	fillPattern(pat, 0x01020304, 0)
	// CRC of holes then fill, each 2^27 blocks, computed the slow way only for the algebra's inputs.
	crc := crcFill(0, 0, blocks/2*4096, nil)
	crc = crcFill(crc, 0x01020304, blocks/2*4096, nil)
	file := cat(header(4096, blocks, 3), chunk(ChunkDontCare, blocks/2, nil), chunk(ChunkFill, blocks/2, le32(0x01020304)), chunk(ChunkCRC32, 0, le32(crc)))
	m, err := NewReader(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.Verify(ctx); err != nil {
		t.Fatalf("good: %v", err)
	}
	// Expand to a discarding writer: only the CRC work and the fill writes (which the discard makes free).
	if err := m.Expand(ctx, discardAt{}, true, nil); err != nil {
		t.Fatalf("good expand: %v", err)
	}
	file[len(file)-1] ^= 1
	m, _ = NewReader(bytes.NewReader(file), int64(len(file)))
	if err := m.Expand(ctx, discardAt{}, true, nil); !errors.Is(err, failure.ErrInvalid) {
		t.Fatalf("bad CRC after 1 TiB: %v", err)
	}
}

type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }
