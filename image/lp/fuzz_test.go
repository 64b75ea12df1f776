package lp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
)

// tinySuper is a complete 32 KiB super image (one slot, 512-byte metadata) small enough to fuzz.
func tinySuper(tb testing.TB) []byte {
	data := bytes.Repeat([]byte{0xa5}, 8192)
	var w memWriter
	_, err := Build(context.Background(), &w, BuildSpec{
		DeviceSize: 32768, MetadataMaxSize: 512, MetadataSlots: 1, Alignment: 4096, VirtualAB: true,
		Partitions: []PartitionSpec{{Name: "system", Attributes: AttrReadonly, Image: image.New(bytes.NewReader(data), 8192)}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return w.b
}

func FuzzMetadata(f *testing.F) {
	if b, err := os.ReadFile("testdata/super_empty.img"); err == nil { // made by lpmake
		f.Add(b)
	}
	f.Add(emptySmall(f))
	f.Add(tinySuper(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, failure.ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		_ = s.Info()
		for slot := 0; slot < s.Slots(); slot++ {
			m, err := s.Metadata(slot)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Marshal(); err != nil {
				t.Fatalf("valid metadata does not re-marshal: %v", err)
			}
			for _, p := range m.Partitions {
				img, err := s.Partition(slot, p.Name)
				if err != nil {
					continue
				}
				if img.Size() != int64(p.Size) {
					t.Fatalf("%s: image size %d, metadata %d", p.Name, img.Size(), p.Size)
				}
				// Read a little from the start and the end: a partition that opened must be readable.
				n := min(img.Size(), 4096)
				if _, err := io.ReadFull(io.NewSectionReader(img, 0, n), make([]byte, n)); err != nil && img.Size() <= int64(len(b)) {
					t.Fatalf("%s: %v", p.Name, err)
				}
			}
		}
	})
}
