package avb

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
)

func fuzzSeeds(f *testing.F) [][]byte {
	var out [][]byte
	for _, n := range []string{"vbmeta.img", "vbmeta_system.img", "vbmeta-unsigned.img"} {
		b := seedVBMeta(f, n)
		v, err := Parse(b)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, v.Raw)
	}
	vb, err := Sign(SignOptions{Descriptors: []Descriptor{
		&UnknownDescriptor{TagValue: 7, Data: []byte("abcdefgh")},
		&PropertyDescriptor{Key: "a", Value: []byte("b")},
		&KernelCmdlineDescriptor{Cmdline: "x=y"},
	}})
	if err != nil {
		f.Fatal(err)
	}
	return append(out, vb)
}

// exercise uses an accepted vbmeta the way the CLI does; nothing may panic.
func exercise(t *testing.T, img *Image, self image.Image) {
	img.Info()
	img.WriteText(io.Discard)
	VerifySignature(img.VBMeta)
	for _, d := range img.VBMeta.Descriptors {
		EncodeDescriptor(d)
	}
	if self != nil && self.Size() < 1<<20 {
		if _, err := Verify(context.Background(), img, self, VerifyOptions{}); err != nil && !errors.Is(err, failure.ErrInvalid) {
			t.Fatalf("verify: %v", err)
		}
	}
}

func FuzzVBMeta(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte("AVB0"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Parse(data)
		if err != nil {
			if !errors.Is(err, failure.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		exercise(t, &Image{VBMeta: v, Size: int64(len(data))}, nil)
		// the bytes read back through the reader path give the same result
		img, err := Load(image.New(bytes.NewReader(data), int64(len(data))))
		if err != nil && !errors.Is(err, failure.ErrInvalid) {
			t.Fatalf("Load: %v", err)
		}
		if err == nil && img.Footer == nil && !bytes.Equal(img.VBMeta.Raw, v.Raw) {
			t.Fatal("Load and Parse disagree")
		}
	})
}

func FuzzFooter(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(footerSeed(s))
	}
	f.Add(append(make([]byte, 8), []byte("AVBf\x00\x00\x00\x01")...))
	f.Fuzz(func(t *testing.T, data []byte) {
		src := image.New(bytes.NewReader(data), int64(len(data)))
		img, err := Load(src)
		if err != nil {
			if !errors.Is(err, failure.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		exercise(t, img, src)
		// adding a footer to the same bytes must not panic either
		m := &memFile{b: append([]byte(nil), data...)}
		if _, err := AddHashtreeFooter(context.Background(), m, int64(len(m.b)), FooterOptions{PartitionName: "x", Salt: []byte{1}}); err != nil && !errors.Is(err, failure.ErrInvalid) {
			t.Fatalf("AddHashtreeFooter: %v", err)
		}
	})
}
