package xzfilter

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"testing"

	"github.com/ulikunitz/xz"
)

// benchStream compresses n code-like bytes with the real xz (skipping when it is absent).
func benchStream(b *testing.B, n int, args ...string) ([]byte, []byte) {
	b.Helper()
	data := codeLike(b, n)
	if _, err := exec.LookPath("xz"); err != nil {
		b.Skip("xz not installed")
	}
	cmd := exec.Command("xz", append(args, "-c", "-T1")...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		b.Fatal(err)
	}
	return data, out
}

func benchDecode(b *testing.B, newReader func([]byte) (io.Reader, error), data, stream []byte) {
	b.SetBytes(int64(len(data)))
	buf := make([]byte, 256<<10)
	for b.Loop() {
		r, err := newReader(stream)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, r, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSize() int {
	if os.Getenv("BENCH_XZ_BIG") != "" {
		return 32 << 20
	}
	return 4 << 20
}

// BenchmarkReaderLZMA2 vs BenchmarkUlikunitz: the cost of our container parsing and checks over the plain
// ulikunitz/xz reader on the same LZMA2-only stream.
func BenchmarkReaderLZMA2(b *testing.B) {
	data, s := benchStream(b, benchSize(), "--lzma2=preset=6")
	benchDecode(b, func(s []byte) (io.Reader, error) { return NewReader(bytes.NewReader(s)) }, data, s)
}

func BenchmarkUlikunitz(b *testing.B) {
	data, s := benchStream(b, benchSize(), "--lzma2=preset=6")
	benchDecode(b, func(s []byte) (io.Reader, error) { return xz.NewReader(bytes.NewReader(s)) }, data, s)
}

func BenchmarkReaderARM64(b *testing.B) {
	data, s := benchStream(b, benchSize(), "--arm64", "--lzma2=preset=6")
	benchDecode(b, func(s []byte) (io.Reader, error) { return NewReader(bytes.NewReader(s)) }, data, s)
}

func BenchmarkReaderX86(b *testing.B) {
	data, s := benchStream(b, benchSize(), "--x86", "--lzma2=preset=6")
	benchDecode(b, func(s []byte) (io.Reader, error) { return NewReader(bytes.NewReader(s)) }, data, s)
}
