package bootimg

import (
	"bytes"
	"context"
	"io"
	"os"
	"strconv"
	"testing"
)

// benchSize is the kernel size of the benchmark image (ROMFORGE_BENCH_BOOT_MB, default 32 MiB).
func benchSize() int {
	if v, err := strconv.Atoi(os.Getenv("ROMFORGE_BENCH_BOOT_MB")); err == nil && v > 0 {
		return v << 20
	}
	return 32 << 20
}

func benchImage(b *testing.B) []byte {
	a := DefaultArgs()
	a.HeaderVersion = 2
	a.PageSize = 4096
	a.Kernel = bytesImage(randBytes(1, benchSize()))
	a.Ramdisk = bytesImage(randBytes(2, benchSize()/4))
	a.DTB = bytesImage(randBytes(3, 100000))
	o, err := Build(&a)
	if err != nil {
		b.Fatal(err)
	}
	img, err := o.Bytes()
	if err != nil {
		b.Fatal(err)
	}
	return img
}

func BenchmarkUnpackRepack(b *testing.B) {
	img := benchImage(b)
	dir := b.TempDir()
	b.SetBytes(int64(len(img)))
	for b.Loop() {
		im, err := Parse(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := im.Unpack(context.Background(), dir); err != nil {
			b.Fatal(err)
		}
		o, err := Repack(context.Background(), dir)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := o.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
		o.Close()
	}
}
