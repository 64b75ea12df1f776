package blockota

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
)

// newBlocks returns n blocks of new data; block k is filled with byte 'A'+k.
func newBlocks(n int) []byte {
	var b []byte
	for k := 0; k < n; k++ {
		b = append(b, bytes.Repeat([]byte{byte('A' + k)}, BlockSize)...)
	}
	return b
}

// describe renders an image as one character per block: the fill byte, '0' for zeros, '?' otherwise.
func describe(img []byte) string {
	var s strings.Builder
	for off := 0; off < len(img); off += BlockSize {
		blk := img[off:min(off+BlockSize, len(img))]
		switch {
		case bytes.Count(blk, blk[:1]) != len(blk):
			s.WriteByte('?')
		case blk[0] == 0:
			s.WriteByte('0')
		default:
			s.WriteByte(blk[0])
		}
	}
	return s.String()
}

func applyFile(t *testing.T, listPath string, data []byte, prefill bool) ([]byte, error) {
	t.Helper()
	f, err := os.Open(listPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tl, err := Parse(f)
	if err != nil {
		return nil, err
	}
	out := filepath.Join(t.TempDir(), "out.img")
	dst, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if prefill { // garbage that Apply must overwrite with zeros
		dst.Write(bytes.Repeat([]byte{0x5a}, int(tl.ImageBlocks()*BlockSize)))
	}
	err = Apply(t.Context(), tl, bytes.NewReader(data), dst, nil)
	dst.Close()
	if err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}

// Hand-written lists in two versions give the images worked out by hand.
func TestKnownLists(t *testing.T) {
	for _, c := range []struct {
		list  string
		nnew  int
		image string
	}{
		// v1: erase 0..10, new 0,1 ← A,B and 5,6 ← C,D, zero 2,3.
		{"testdata/v1.transfer.list", 4, "AB000CD000"},
		// v3: erase 0..8, new 0..3 ← A,B,C, zero 3..6, then new 4 ← D and 6,7 ← E,F (over the zeros at 4).
		{"testdata/v3.transfer.list", 6, "ABC0D0EF"},
	} {
		for _, prefill := range []bool{false, true} {
			img, err := applyFile(t, c.list, newBlocks(c.nnew), prefill)
			if err != nil {
				t.Fatalf("%s: %v", c.list, err)
			}
			if got := describe(img); got != c.image {
				t.Errorf("%s (prefilled %v): image %s, want %s", c.list, prefill, got, c.image)
			}
		}
	}
	f, _ := os.Open("testdata/v3.transfer.list")
	tl, err := Parse(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	in := tl.Info()
	if in.Version != 3 || in.TotalBlocks != 9 || in.NewBlocks != 6 || in.ZeroBlocks != 3 || in.EraseBlocks != 8 ||
		in.Commands["new"] != 2 || in.ImageSize != 8*BlockSize || in.Incremental {
		t.Errorf("Info %+v", in)
	}
}

func TestNewDataLength(t *testing.T) {
	list := "testdata/v1.transfer.list"
	_, err := applyFile(t, list, newBlocks(3), false)
	if !errors.Is(err, failure.ErrInvalid) || !strings.Contains(err.Error(), "new data ends after") {
		t.Errorf("short new data: %v", err)
	}
	_, err = applyFile(t, list, newBlocks(5), false)
	if !errors.Is(err, failure.ErrInvalid) || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("long new data: %v", err)
	}
	// A brotli bomb: 1 GiB of zeros in a few hundred bytes. Apply stops one byte past what it needs.
	var bomb bytes.Buffer
	bw := brotli.NewWriterLevel(&bomb, 5)
	zero := make([]byte, 1<<20)
	for i := 0; i < 1024; i++ {
		bw.Write(zero)
	}
	bw.Close()
	f, _ := os.Open(list)
	tl, _ := Parse(f)
	f.Close()
	cr := &countReader{r: brotli.NewReader(&bomb)}
	err = Apply(t.Context(), tl, cr, &memImage{}, nil)
	if !errors.Is(err, failure.ErrInvalid) || cr.n > tl.NewDataSize()+1 {
		t.Errorf("bomb: %v after reading %d decompressed bytes (need %d)", err, cr.n, tl.NewDataSize())
	}
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// memImage is an in-memory io.WriterAt.
type memImage struct{ b []byte }

func (m *memImage) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

func TestParseErrors(t *testing.T) {
	for list, msg := range map[string]string{
		"":                            "missing version",
		"5\n0\n":                      "version",
		"4\n1\n":                      "missing stash entry count",
		"1\nx\n":                      "total block count",
		"1\n2\nnew 3,0,2\n":           "positive even",
		"1\n2\nnew 4,0,2\n":           "count 4 larger",
		"1\n2\nnew 2,5,5\n":           "empty",
		"1\n2\nnew 2,0,99999999999\n": "beyond block",
		"1\n2\nnew 2,0,-1\n":          "empty",
		"1\n2\nnew 2,0\n":             "numbers given",
		"1\n2\nnew 2,0,1,2\n":         "does not match",
		"1\n2\nfrobnicate 2,0,1\n":    "line 3: unknown command",
		"1\n1\nnew 2,0,2\n":           "less than the 2 blocks",
		"1\n2\nerase 2,0,67108864\n" + strings.Repeat("erase 2,0,67108864\n", 16): "more than",
	} {
		_, err := Parse(strings.NewReader(list))
		if err == nil || !errors.Is(err, failure.ErrInvalid) || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v (want %q)", list, err, msg)
		}
	}
}

// Incremental commands parse (for inspect) but Apply names the line and refuses.
func TestIncremental(t *testing.T) {
	list := "4\n10\n1\n5\nerase 2,0,4\nstash abcd 2,0,2\nmove abcd 2,2,4 2 2,0,2\nnew 2,0,2\n"
	tl, err := Parse(strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	if !tl.Info().Incremental || tl.Info().Commands["stash"] != 1 {
		t.Errorf("Info %+v", tl.Info())
	}
	err = Apply(t.Context(), tl, bytes.NewReader(newBlocks(2)), &memImage{}, nil)
	if !errors.Is(err, failure.ErrInvalid) || !strings.Contains(err.Error(), "line 6") || !strings.Contains(err.Error(), `"stash"`) {
		t.Fatalf("got %v", err)
	}
}

func mixed(size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, size)
	for off := 0; off < size; {
		n := min(size-off, (r.IntN(40)+1)*BlockSize+r.IntN(3)*r.IntN(BlockSize))
		switch r.IntN(3) {
		case 0:
			for i := off; i < off+n; i++ {
				b[i] = byte(r.Uint32())
			}
		case 1:
			for i := off; i < off+n; i++ {
				b[i] = byte(i / 7)
			}
		}
		off += n
	}
	return b
}

// Build then Apply gives the source back, for every compression and through OpenNewData; the brotli
// and xz command-line tools decompress what we wrote to exactly the non-zero blocks.
func TestBuildApplyRoundTrip(t *testing.T) {
	for _, size := range []int{0, 4096, 3<<20 + 4096*3, 2<<20 + 100} {
		src := mixed(size, uint64(size))
		padded := append(bytes.Clone(src), make([]byte, (BlockSize-size%BlockSize)%BlockSize)...)
		for _, comp := range []string{"br", "xz", "none"} {
			dir := t.TempDir()
			suffix := map[string]string{"br": ".br", "xz": ".xz", "none": ""}[comp]
			datPath := filepath.Join(dir, "system.new.dat"+suffix)
			listPath := filepath.Join(dir, "system.transfer.list")
			dat, _ := os.Create(datPath)
			list, _ := os.Create(listPath)
			err := Build(t.Context(), image.New(bytes.NewReader(src), int64(size)), dat, list, BuildOptions{Compression: comp})
			dat.Close()
			list.Close()
			if err != nil {
				t.Fatalf("size %d %s: %v", size, comp, err)
			}
			lf, _ := os.Open(listPath)
			tl, err := Parse(lf)
			lf.Close()
			if err != nil {
				t.Fatalf("our list does not parse: %v", err)
			}
			if tl.Version != 4 || tl.ImageBlocks()*BlockSize != int64(len(padded)) {
				t.Fatalf("list v%d for %d blocks, want %d", tl.Version, tl.ImageBlocks(), len(padded)/BlockSize)
			}
			nd, err := OpenNewData(datPath)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "system.img")
			dst, _ := os.Create(out)
			err = Apply(t.Context(), tl, nd, dst, nil)
			nd.Close()
			dst.Close()
			if err != nil {
				t.Fatalf("size %d %s: apply: %v", size, comp, err)
			}
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, padded) {
				t.Fatalf("size %d %s: round trip differs (%d vs %d bytes)", size, comp, len(got), len(padded))
			}
			// The reference decompressors agree with us on the new data.
			var nonzero []byte
			for off := 0; off < len(padded); off += BlockSize {
				if bytes.Count(padded[off:off+BlockSize], []byte{0}) != BlockSize {
					nonzero = append(nonzero, padded[off:off+BlockSize]...)
				}
			}
			var tool []string
			switch comp {
			case "br":
				tool = []string{"brotli", "-d", "-c", datPath}
			case "xz":
				tool = []string{"xz", "-d", "-c", datPath}
			default:
				continue
			}
			validators.Tool(t, tool[0])
			plain, err := validators.RunErr(tool[0], tool[1:]...)
			if err != nil {
				t.Fatalf("%s rejects our stream: %v", tool[0], err)
			}
			if plain != string(nonzero) {
				t.Fatalf("%s: decompressed %d bytes, want the %d bytes of non-zero blocks", tool[0], len(plain), len(nonzero))
			}
		}
	}
}

// A new.dat.br made by the brotli tool (not by us) applies too.
func TestApplyToolCompressed(t *testing.T) {
	validators.Tool(t, "brotli")
	dir := t.TempDir()
	plain := filepath.Join(dir, "system.new.dat")
	os.WriteFile(plain, newBlocks(6), 0o644)
	validators.Run(t, "brotli", "-q", "6", "-o", plain+".br", plain)
	nd, err := OpenNewData(plain + ".br")
	if err != nil {
		t.Fatal(err)
	}
	defer nd.Close()
	f, _ := os.Open("testdata/v3.transfer.list")
	tl, _ := Parse(f)
	f.Close()
	m := &memImage{}
	if err := Apply(t.Context(), tl, nd, m, nil); err != nil {
		t.Fatal(err)
	}
	if got := describe(m.b); got != "ABC0D0EF" {
		t.Fatalf("image %s", got)
	}
	// A corrupt brotli stream is invalid input.
	bad, _ := os.ReadFile(plain + ".br")
	bad[len(bad)/2] ^= 0xff
	os.WriteFile(plain+".bad.br", bad, 0o644)
	nd2, _ := OpenNewData(plain + ".bad.br")
	defer nd2.Close()
	if err := Apply(t.Context(), tl, nd2, &memImage{}, nil); !errors.Is(err, failure.ErrInvalid) {
		t.Fatalf("corrupt brotli: %v", err)
	}
}

func TestSplitCommands(t *testing.T) {
	cmds := splitCommands("new", RangeSet{{0, 1000}, {2000, 3100}, {5000, 5001}})
	var got []string
	for _, c := range cmds {
		got = append(got, fmt.Sprintf("%d:%s", c.Ranges.Blocks(), c.Ranges))
	}
	want := "1024:4,0,1000,2000,2024 1024:2,2024,3048 53:4,3048,3100,5000,5001"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %s", strings.Join(got, " "))
	}
}
