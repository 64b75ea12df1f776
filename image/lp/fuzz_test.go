package lp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
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

// metadataCopies returns the offsets of the metadata copies (primary and backup) in a super image.
func metadataCopies(b []byte) []int {
	var out []int
	for off := 4096; off+4 <= len(b); off += 512 {
		if le.Uint32(b[off:]) == HeaderMagic {
			out = append(out, off)
		}
	}
	return out
}

// resealBounded is reseal for a blob of at most n bytes at off whose header may claim anything.
func resealBounded(b []byte, off, n int) {
	hs, ts := int(le.Uint32(b[off+8:])), int64(le.Uint32(b[off+44:]))
	if hs < 80 || hs > n || int64(hs)+ts > int64(n) {
		return // the reader rejects these sizes before any checksum
	}
	reseal(b[:off+n], off)
}

// withBlob returns tmpl with blob (at most n bytes of it) as every metadata copy, checksums recomputed.
func withBlob(tmpl []byte, copies []int, blob []byte, n int) []byte {
	blob = blob[:min(len(blob), n)]
	img := bytes.Clone(tmpl)
	for _, off := range copies {
		clear(img[off : off+n])
		copy(img[off:], blob)
		if len(blob) >= 80 {
			resealBounded(img, off, n)
		}
	}
	return img
}

// The blob mode's seed opens, and a resealed change of meaning is judged on that meaning.
func TestMetadataBlobMode(t *testing.T) {
	tmpl := tinySuper(t)
	copies := metadataCopies(tmpl)
	blob := bytes.Clone(tmpl[copies[0] : copies[0]+512])
	if _, err := parse(withBlob(tmpl, copies, blob, 512)); err != nil {
		t.Fatalf("unchanged blob: %v", err)
	}
	blob[4] = 11 // major version
	_, err := parse(withBlob(tmpl, copies, blob, 512))
	if !errors.Is(err, failure.ErrInvalid) || strings.Contains(err.Error(), "checksum") {
		t.Fatalf("version 11: %v", err)
	}
}

// FuzzMetadata takes either a whole super image, or "M" and a metadata blob that replaces both copies in
// a valid 32 KiB super with its checksums recomputed, so that mutations reach the meaning of the
// header and tables instead of dying at the SHA-256 checks.
func FuzzMetadata(f *testing.F) {
	tmpl := tinySuper(f)
	copies := metadataCopies(tmpl)
	if len(copies) < 2 {
		f.Fatalf("template has metadata at %v", copies)
	}
	const blobMax = 512
	if b, err := os.ReadFile("testdata/super_empty.img"); err == nil { // made by lpmake
		f.Add(b)
	}
	f.Add(emptySmall(f))
	f.Add(tmpl)
	f.Add(append([]byte("M"), bytes.TrimRight(tmpl[copies[0]:copies[0]+blobMax], "\x00")...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 0 && b[0] == 'M' {
			b = withBlob(tmpl, copies, b[1:], blobMax)
		}
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
