package avb

import (
	"bytes"
	"context"
	"crypto"
	"testing"

	"github.com/romforge/romforge/progress"
)

func BenchmarkHashtree(b *testing.B) {
	data := pattern(64<<20, 3)
	r := bytes.NewReader(data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, _, err := computeHashtree(context.Background(), r, int64(len(data)), int64(len(data)), 4096, crypto.SHA256, []byte("salt"), progress.Discard.Task("", 0)); err != nil {
			b.Fatal(err)
		}
	}
}
