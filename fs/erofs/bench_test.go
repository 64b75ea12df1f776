package erofs

import (
	"context"
	"io"
	"io/fs"
	"os"
	"testing"

	"github.com/romforge/romforge/image"
)

// TestBenchTool is driven by scripts/bench/erofs.sh: with EROFS_BENCH_BUILD=SRC,OUT it builds OUT from the
// host directory SRC (lz4hc, or $EROFS_BENCH_COMPRESS); with EROFS_BENCH_READ=IMG it reads every file.
// Without those variables it is skipped.
func TestBenchTool(t *testing.T) {
	if spec := os.Getenv("EROFS_BENCH_BUILD"); spec != "" {
		var src, out string
		for i := range spec {
			if spec[i] == ',' {
				src, out = spec[:i], spec[i+1:]
			}
		}
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		c := os.Getenv("EROFS_BENCH_COMPRESS")
		if c == "" {
			c = "lz4hc"
		}
		res, err := Write(context.Background(), f, hostTree(t, src), WriteOptions{Compression: c})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %d bytes, %d inodes", res.Size, res.Inodes)
		return
	}
	if p := os.Getenv("EROFS_BENCH_READ"); p != "" {
		img, err := image.OpenFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fsys, err := Open(img)
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		buf := make([]byte, 1<<20)
		err = fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			fl, err := fsys.Open(name)
			if err != nil {
				return err
			}
			n, err := io.CopyBuffer(io.Discard, fl.(io.Reader), buf)
			total += n
			fl.Close()
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("read %d bytes", total)
		return
	}
	t.Skip("set EROFS_BENCH_BUILD or EROFS_BENCH_READ (see scripts/bench/erofs.sh)")
}
