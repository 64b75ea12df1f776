package sparse

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/romforge/romforge/image"
)

// benchSize is the mixed image size for benchmarks: $ROMFORGE_BENCH_MB MiB, default 256.
func benchSize() int64 {
	if v, err := strconv.Atoi(os.Getenv("ROMFORGE_BENCH_MB")); err == nil && v > 0 {
		return int64(v) << 20
	}
	return 256 << 20
}

func BenchmarkWrite(b *testing.B) {
	src := mixed(benchSize(), 99)
	img := image.New(bytes.NewReader(src), int64(len(src)))
	b.SetBytes(int64(len(src)))
	b.ResetTimer()
	for b.Loop() {
		if err := Write(b.Context(), io.Discard, img, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	src := mixed(benchSize(), 99)
	sp := encode(b, src, WriteOptions{DontCare: true})
	m, err := NewReader(bytes.NewReader(sp), int64(len(sp)))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(m.Size())
	b.ResetTimer()
	for b.Loop() {
		if _, err := io.CopyBuffer(io.Discard, image.Reader(m), buf); err != nil {
			b.Fatal(err)
		}
	}
}
