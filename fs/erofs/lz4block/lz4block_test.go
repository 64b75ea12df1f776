package lz4block

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pierrec/lz4/v4"
)

func samples() map[string][]byte {
	r := rand.New(rand.NewSource(1))
	random := make([]byte, 200000)
	r.Read(random)
	var text bytes.Buffer
	words := []string{"system", "vendor", "ro.product", "=", "true", "false", "\n", "android", " ", "persist.sys."}
	for text.Len() < 300000 {
		text.WriteString(words[r.Intn(len(words))])
	}
	mixed := append(append([]byte{}, text.Bytes()[:50000]...), random[:30000]...)
	mixed = append(mixed, make([]byte, 70000)...)
	return map[string][]byte{
		"random": random, "text": text.Bytes(), "zeros": make([]byte, 1<<20), "mixed": mixed,
		"tiny": []byte("abc"), "short": []byte("abcabcabcabcabcabc"),
	}
}

// TestDestSizeRoundTrip checks every level and budget: the block decodes (with our decoder and with
// pierrec/lz4, an independent one) to exactly the consumed prefix, and never overruns the budget.
func TestDestSizeRoundTrip(t *testing.T) {
	for name, src := range samples() {
		for _, level := range []int{0, 1, 9, 12} {
			c := NewCompressor(level)
			for _, budget := range []int{1, 13, 100, 4096, 65536} {
				pos := 0
				for pos < len(src) {
					dst := make([]byte, budget)
					in := src[pos:min(len(src), pos+256<<10)]
					n, w := c.CompressDestSize(in, dst)
					if w > budget || n == 0 && budget > 1 {
						t.Fatalf("%s L%d B%d: consumed %d wrote %d", name, level, budget, n, w)
					}
					if n == 0 {
						break
					}
					out := make([]byte, n)
					if m, err := Decompress(dst[:w], out); err != nil || m != n || !bytes.Equal(out, in[:n]) {
						t.Fatalf("%s L%d B%d at %d: decode %d/%d %v", name, level, budget, pos, m, n, err)
					}
					out2 := make([]byte, n)
					if m, err := lz4.UncompressBlock(dst[:w], out2); err != nil || m != n || !bytes.Equal(out2, in[:n]) {
						t.Fatalf("%s L%d B%d at %d: pierrec decode %d/%d %v", name, level, budget, pos, m, n, err)
					}
					pos += n
				}
			}
		}
	}
}

func TestRatio(t *testing.T) {
	src := samples()["text"]
	for _, level := range []int{0, 9} {
		c := NewCompressor(level)
		total, pos := 0, 0
		for pos < len(src) {
			dst := make([]byte, 4096)
			n, _ := c.CompressDestSize(src[pos:], dst)
			pos += n
			total += 4096
		}
		t.Logf("level %d: %d -> %d blocks (%.3f)", level, len(src), total, float64(total)/float64(len(src)))
		if total*2 > len(src) {
			t.Fatalf("level %d compresses repetitive text only to %d/%d", level, total, len(src))
		}
	}
}

func TestDecompressCorrupt(t *testing.T) {
	for _, b := range [][]byte{{0x10}, {0x00, 0x01, 0x00}, {0x1f, 'a', 0x05, 0x00}, {0xf0, 0xff}} {
		if _, err := Decompress(b, make([]byte, 100)); err == nil {
			t.Errorf("% x decoded without error", b)
		}
	}
}

func FuzzDecompress(f *testing.F) {
	f.Add([]byte{0x11, 'a', 0x01, 0x00, 0x50, 'b', 'c', 'd', 'e', 'f'}, uint16(64))
	f.Fuzz(func(t *testing.T, src []byte, n uint16) {
		dst := make([]byte, n)
		m, _ := Decompress(src, dst)
		if m > len(dst) {
			t.Fatal("overrun")
		}
	})
}

func goSource(b *testing.B) []byte {
	var buf bytes.Buffer
	files, _ := filepath.Glob(filepath.Join(goroot(b), "src", "net", "http", "*.go"))
	for _, f := range files {
		d, _ := os.ReadFile(f)
		buf.Write(d)
	}
	if buf.Len() == 0 {
		b.Skip("no Go sources")
	}
	return buf.Bytes()
}

func BenchmarkFast(b *testing.B) { benchLevel(b, 0) }
func BenchmarkHC9(b *testing.B)  { benchLevel(b, 9) }
func BenchmarkHC12(b *testing.B) { benchLevel(b, 12) }

func benchLevel(b *testing.B, level int) {
	src := goSource(b)
	c := NewCompressor(level)
	dst := make([]byte, 4096)
	blocks := 0
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		for pos := 0; pos < len(src); {
			n, _ := c.CompressDestSize(src[pos:min(len(src), pos+65536)], dst)
			pos += n
			blocks++
		}
	}
	b.ReportMetric(float64(blocks*4096)/float64(len(src)*b.N), "ratio")
}

// goroot asks the go command, as runtime.GOROOT is deprecated.
func goroot(b *testing.B) string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		b.Skipf("go env GOROOT: %v", err)
	}
	return strings.TrimSpace(string(out))
}
