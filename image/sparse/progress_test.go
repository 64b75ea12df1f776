package sparse

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/progress"
)

// TestWriteProgressCountsData: the write bar's total is the data copied, and it ends at its total,
// however large the holes and fills around the data are.
func TestWriteProgressCountsData(t *testing.T) {
	data := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 9}, 3*4096/8) // 3 raw blocks
	fill := bytes.Repeat([]byte{0xAA}, 8*4096)                     // 8 fill blocks
	src := image.Concat(image.New(bytes.NewReader(data), int64(len(data))), image.New(bytes.NewReader(fill), int64(len(fill))), image.Zero(1<<30))
	rec := &progress.Recorder{}
	if err := Write(context.Background(), io.Discard, src, WriteOptions{HolesDontCare: true, Progress: rec}); err != nil {
		t.Fatal(err)
	}
	var total int64 = -1
	for _, e := range rec.Events() {
		if e.Task == "sparse write" && e.Kind == "start" {
			total = e.Total
		}
	}
	if total != int64(len(data)) {
		t.Fatalf("sparse write total = %d, want the %d data bytes (not the %d logical)", total, len(data), src.Size())
	}
	if got := rec.Total("sparse write"); got != total {
		t.Fatalf("sparse write counted %d of %d", got, total)
	}
}
