package blockota

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/romforge/romforge/internal/failure"
)

// FuzzTransferList parses arbitrary lists; accepted ones must print and re-parse to the same commands,
// and small ones must apply (with zero new data of the right length) without panicking.
func FuzzTransferList(f *testing.F) {
	for _, p := range []string{"testdata/v1.transfer.list", "testdata/v3.transfer.list"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("4\n10\n1\n5\nerase 2,0,4\nstash abcd 2,0,2\nmove abcd 2,2,4 2 2,0,2\nnew 2,0,2\n"))
	f.Add([]byte("2\n3\n0\n0\nzero 2,0,3\nnew 2,1,2\n\n"))
	f.Add([]byte("4\n0\n0\n0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tl, err := Parse(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, failure.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		_ = tl.Info()
		var out bytes.Buffer
		if _, err := tl.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		again, err := Parse(&out)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out.String(), err)
		}
		if len(again.Commands) != len(tl.Commands) {
			t.Fatalf("re-parse: %d commands, want %d", len(again.Commands), len(tl.Commands))
		}
		if tl.ImageBlocks() > 1024 || tl.CheckFull() != nil {
			return
		}
		m := &memImage{}
		nd := io.LimitReader(zeroReader{}, tl.NewDataSize())
		if err := Apply(t.Context(), tl, nd, m, nil); err != nil {
			t.Fatalf("apply: %v", err)
		}
		if int64(len(m.b)) > tl.ImageBlocks()*BlockSize {
			t.Fatalf("wrote %d bytes for %d blocks", len(m.b), tl.ImageBlocks())
		}
	})
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }
