package cpio

import (
	"fmt"
	"testing"
)

// BenchmarkEditLZ4Ramdisk parses an lz4 ramdisk of ~1000 files, replaces one and re-compresses.
func BenchmarkEditLZ4Ramdisk(b *testing.B) {
	a := New()
	a.AddDir("lib", 0o755, 0, 0)
	for i := range 1000 {
		a.AddFile(fmt.Sprintf("lib/f%d", i), randBytes(uint64(i), 4000+i), 0o644, 0, 0)
	}
	lz, err := CompressLZ4Legacy(a.Bytes())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(a.Bytes())))
	for b.Loop() {
		r, err := ParseRamdisk(lz)
		if err != nil {
			b.Fatal(err)
		}
		r.Replace("lib/f7", []byte("x"))
		if _, err := r.Bytes(); err != nil {
			b.Fatal(err)
		}
	}
}
