package sparse

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
)

// writerInputs are raw images the writer is checked on: the shared fixtures plus generated ones
// (mixed content, a size that is not a multiple of the block size, all zeros, empty).
func writerInputs(t *testing.T) map[string]string {
	fx := validators.Fixtures(t)
	in := map[string]string{
		"pattern.raw": filepath.Join(fx, "sparse/pattern.raw"),
		"big.raw":     filepath.Join(fx, "sparse/big.raw"),
		"odd.raw":     filepath.Join(fx, "sparse/odd.raw"),
		"system.img":  filepath.Join(fx, "ext4/system.img"),
		"erofs.img":   filepath.Join(fx, "erofs/system.lz4hc.img"),
	}
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"mixed":    mixed(6<<20, 1),
		"mixedodd": mixed(5<<20+777, 2),
		"zeros":    make([]byte, 1<<20),
		"tiny":     []byte("x"),
		"empty":    nil,
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		in[name] = p
	}
	return in
}

// Our sparse output expands (by simg2img) to the input, is no larger than img2simg's, and without
// DontCare is byte-identical to img2simg's.
func TestWriteAgainstLibsparse(t *testing.T) {
	validators.Tool(t, "simg2img")
	validators.Tool(t, "img2simg")
	for name, path := range writerInputs(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			theirs := filepath.Join(dir, "theirs.simg")
			validators.Run(t, "img2simg", path, theirs)
			theirSize := fileSize(t, theirs)
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, opt := range []WriteOptions{{}, {DontCare: true}, {CRC: true}} {
				src, err := image.OpenFile(path)
				if err != nil {
					t.Fatal(err)
				}
				ours := filepath.Join(dir, "ours.simg")
				f, err := os.Create(ours)
				if err != nil {
					t.Fatal(err)
				}
				if err := Write(t.Context(), f, src, opt); err != nil {
					t.Fatalf("%+v: %v", opt, err)
				}
				src.Close()
				f.Close()
				raw := filepath.Join(dir, "back.raw")
				validators.Run(t, "simg2img", ours, raw)
				back, err := os.ReadFile(raw)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(back, padded(in, 4096)) {
					t.Fatalf("%+v: simg2img of our output differs from the input (%d vs %d bytes)", opt, len(back), len(in))
				}
				ourSize := fileSize(t, ours)
				if !opt.CRC && ourSize > theirSize {
					t.Errorf("%+v: ours %d bytes > img2simg %d", opt, ourSize, theirSize)
				}
				if opt == (WriteOptions{}) && fileSHA(t, ours) != fileSHA(t, theirs) {
					t.Errorf("default options: output differs from img2simg's (%d vs %d bytes)", ourSize, theirSize)
				}
				validators.Run(t, "simg_dump", ours)
				// Our reader reads it back too, and its CRC verifies.
				g, _ := os.Open(ours)
				m, err := NewReader(g, ourSize)
				if err != nil {
					t.Fatal(err)
				}
				if err := m.Verify(t.Context()); err != nil {
					t.Fatal(err)
				}
				if imageSHA(t, m) != sha(padded(in, 4096)) {
					t.Fatalf("our reader of our output differs from the input")
				}
				g.Close()
			}
		})
	}
}

func fileSize(t testing.TB, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// Other block sizes round-trip through our reader; bad ones are refused.
func TestWriteBlockSizes(t *testing.T) {
	src := mixed(1<<20+100, 5)
	for _, bs := range []int{4, 64, 1024, 8192, 65536} {
		sp := encode(t, src, WriteOptions{BlockSize: bs, DontCare: bs == 64})
		m, err := NewReader(bytes.NewReader(sp), int64(len(sp)))
		if err != nil {
			t.Fatalf("bs %d: %v", bs, err)
		}
		if m.BlockSize() != bs || imageSHA(t, m) != sha(padded(src, bs)) {
			t.Fatalf("bs %d: round trip differs", bs)
		}
	}
	for _, bs := range []int{3, 6, -4} {
		err := Write(t.Context(), new(bytes.Buffer), image.New(bytes.NewReader(src), int64(len(src))), WriteOptions{BlockSize: bs})
		if err == nil || !errors.Is(err, failure.ErrUsage) {
			t.Errorf("block size %d: %v", bs, err)
		}
	}
}

// A source that fails or is shorter than it claims makes Write fail.
func TestWriteSourceError(t *testing.T) {
	src := mixed(1<<20, 9)
	short := image.New(bytes.NewReader(src), int64(len(src))+8192)
	if err := Write(t.Context(), new(bytes.Buffer), short, WriteOptions{}); err == nil {
		t.Fatal("short source accepted")
	}
}

// The one-pass WriteFile writes exactly Write's bytes, for every option and awkward size.
func TestWriteFileSameAsWrite(t *testing.T) {
	dir := t.TempDir()
	for i, size := range []int{0, 1, 4096, 10000, 5<<20 + 777, 9 << 20} {
		src := mixed(int64(size), uint64(i))
		for _, opt := range []WriteOptions{{}, {DontCare: true}, {CRC: true, DontCare: true}, {BlockSize: 1024}} {
			want := encode(t, src, opt)
			p := filepath.Join(dir, "out")
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteFile(t.Context(), f, image.New(bytes.NewReader(src), int64(len(src))), opt); err != nil {
				t.Fatal(err)
			}
			f.Close()
			got, _ := os.ReadFile(p)
			if !bytes.Equal(got, want) {
				t.Fatalf("size %d %+v: WriteFile (%d bytes) differs from Write (%d bytes)", size, opt, len(got), len(want))
			}
		}
	}
}

// countedZero is a hole that counts the bytes read from it: the writer should take KnownZero's word
// for it rather than read it.
type countedZero struct {
	n    int64
	read *int64
}

func (z countedZero) Size() int64                 { return z.n }
func (z countedZero) KnownZero(off, n int64) bool { return true }
func (z countedZero) ReadAt(p []byte, off int64) (int, error) {
	*z.read += int64(len(p))
	return image.Zero(z.n).ReadAt(p, off)
}

func TestWriteSkipsKnownZeros(t *testing.T) {
	data := bytes.Repeat([]byte("romforge"), 4096) // 32 KiB of data
	for _, dontCare := range []bool{false, true} { // dontCare here is HolesDontCare: the data has no zero blocks
		// 64 GiB of hole between two data runs: read, it would take minutes; skipped, it is instant.
		var read int64
		src := image.Concat(image.New(bytes.NewReader(data), int64(len(data))), countedZero{64 << 30, &read}, image.New(bytes.NewReader(data), int64(len(data))))
		var out bytes.Buffer
		if err := Write(t.Context(), &out, src, WriteOptions{HolesDontCare: dontCare}); err != nil {
			t.Fatalf("dontCare=%v: %v", dontCare, err)
		}
		// Only the buffers the data shares with the hole are read: at most 2 x 4 MiB per pass (scan and copy).
		if read > 4*ioBuf {
			t.Errorf("dontCare=%v: %d bytes of the hole were read", dontCare, read)
		}
		m, err := NewReader(bytes.NewReader(out.Bytes()), int64(out.Len()))
		if err != nil {
			t.Fatal(err)
		}
		if m.Size() != src.Size() {
			t.Fatalf("expanded size %d, want %d", m.Size(), src.Size())
		}
		got := make([]byte, len(data))
		for _, off := range []int64{0, int64(len(data)) + 64<<30} {
			if _, err := m.ReadAt(got, off); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("data at %d differs (err %v)", off, err)
			}
		}
		if _, err := m.ReadAt(got, 1<<30); err != nil || !bytes.Equal(got, make([]byte, len(got))) {
			t.Fatalf("hole does not read as zeros (err %v)", err)
		}
		chunks, _ := m.Chunks()
		if !dontCare && (len(chunks) != 3 || chunks[1].Type != ChunkFill) {
			t.Fatalf("chunks %+v, want raw, fill, raw", chunks)
		}
		if dontCare {
			// The windows shared with data are read (their zeros are FILL); the rest of the hole is DONT_CARE.
			var holeBlocks uint32
			for _, c := range chunks {
				if c.Type == ChunkDontCare {
					holeBlocks += c.Blocks
				}
			}
			if int64(holeBlocks)*4096 < 64<<30-2*ioBuf {
				t.Fatalf("only %d blocks of DONT_CARE: %+v", holeBlocks, chunks)
			}
		}
	}
}

// TestHolesDontCareKeepsDataZeros: zero blocks inside real data must stay FILL 0 with HolesDontCare.
func TestHolesDontCareKeepsDataZeros(t *testing.T) {
	data := append(bytes.Repeat([]byte("romforge!"), 8192/9+1)[:8192], make([]byte, 8192)...) // data then two zero blocks
	src := image.Concat(image.New(bytes.NewReader(data), int64(len(data))), image.Zero(8<<20))
	var out bytes.Buffer
	if err := Write(t.Context(), &out, src, WriteOptions{HolesDontCare: true}); err != nil {
		t.Fatal(err)
	}
	m, err := NewReader(bytes.NewReader(out.Bytes()), int64(out.Len()))
	if err != nil {
		t.Fatal(err)
	}
	chunks, _ := m.Chunks()
	var kinds []ChunkType
	for _, c := range chunks {
		kinds = append(kinds, c.Type)
	}
	// The first 4 MiB window mixes data and hole, so it is read: its zeros are FILL; the rest is a hole.
	if len(kinds) != 3 || kinds[0] != ChunkRaw || kinds[1] != ChunkFill || kinds[2] != ChunkDontCare {
		t.Fatalf("chunk kinds %v, want raw, fill, dont-care", kinds)
	}
	if chunks[1].Blocks*uint32(m.BlockSize()) < 8192 {
		t.Fatalf("the data's zero blocks are not all FILL: %+v", chunks[1])
	}
}
