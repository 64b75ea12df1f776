package blockota

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
)

// memDst is an in-memory destination that fails on writes beyond its size.
type memDst struct{ b []byte }

func (m *memDst) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, fmt.Errorf("write at %d beyond the %d-byte test image", off, len(m.b))
	}
	return copy(m.b[off:], p), nil
}

// A 60 MB line (what a 67 KB zip can hold) is refused with a short message and little memory.
func TestHugeLineBounded(t *testing.T) {
	for _, line := range []string{
		"new " + strings.Repeat("9", 60<<20),              // one giant count
		"new 2," + strings.Repeat("1", 60<<20) + ",5",     // one giant number
		"erase " + strings.Repeat("2,0,1,", 10<<20) + "2", // a giant range set
	} {
		list := "4\n10\n0\n0\n" + line + "\n"
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Parse(strings.NewReader(list))
		runtime.ReadMemStats(&after)
		if !errors.Is(err, failure.ErrInvalid) {
			t.Fatalf("%.20q…: %v, want invalid input", line, err)
		}
		if n := len(err.Error()); n > 400 {
			t.Errorf("%.20q…: error of %d bytes", line, n)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
			t.Errorf("%.20q…: parsing allocated %d bytes", line, n)
		}
	}
	// Short lines with bad numbers are quoted boundedly too.
	for _, rs := range []string{strings.Repeat("x", 1<<20), "2," + strings.Repeat("7", 1<<20) + ",x", "4,1,2," + strings.Repeat("z", 1<<20)} {
		_, err := ParseRangeSet(rs)
		if err == nil || len(err.Error()) > 300 {
			t.Fatalf("range set error of %d bytes: %.300v", len(err.Error()), err)
		}
	}
}

// A tiny list declaring 2^26 blocks of zeros is refused before anything is written or allocated, and
// quickly; with evidence or an explicit limit in proportion, the same shape is accepted.
func TestDeclaredBlocksBounded(t *testing.T) {
	list := fmt.Sprintf("4\n%d\n0\n0\nnew 2,0,1\nerase 2,1,%d\n", MaxBlocks, MaxBlocks)
	tl, err := Parse(strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	dst := &memDst{b: make([]byte, BlockSize)}
	err = ApplyWith(context.Background(), tl, bytes.NewReader(newBlocks(1)), dst, ApplyOptions{Name: "system", Evidence: 8700})
	if !errors.Is(err, failure.ErrInvalid) || !strings.Contains(err.Error(), "declares") {
		t.Fatalf("2^26 blocks from 8.7 KB: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusal took %v", d)
	}
	if err := Apply(context.Background(), tl, bytes.NewReader(newBlocks(1)), dst, nil); !errors.Is(err, failure.ErrInvalid) {
		t.Fatalf("Apply without evidence: %v", err)
	}
	// The catalog's size, an explicit limit or the context's limit decide instead of the ratio.
	for _, opt := range []ApplyOptions{
		{Limit: image.SizeLimit{Partitions: map[string]int64{"system": MaxBlocks * BlockSize}}, Name: "system"},
		{Limit: image.SizeLimit{Max: MaxBlocks * BlockSize}},
	} {
		if err := tl.CheckSize(context.Background(), opt); err != nil {
			t.Fatalf("%+v: %v", opt, err)
		}
	}
	ctx := image.WithSizeLimit(context.Background(), image.SizeLimit{Max: 1 << 20})
	small := "4\n300\n0\n0\nnew 2,0,300\n"
	tl2, _ := Parse(strings.NewReader(small))
	if err := tl2.CheckSize(ctx, ApplyOptions{Evidence: 1 << 30}); !errors.Is(err, failure.ErrInvalid) {
		t.Fatalf("context limit of 1 MiB let 300 blocks through: %v", err)
	}
}

// Random lists: CheckSize agrees with image.SizeLimit on the list's extent, and Apply never writes when
// CheckSize refuses.
func TestCheckSizeProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		end := 1 + r.Int64N(MaxBlocks)
		list := fmt.Sprintf("4\n%d\n0\n0\nzero 2,0,%d\n", end, end)
		tl, err := Parse(strings.NewReader(list))
		if err != nil {
			t.Fatal(err)
		}
		ev := r.Int64N(1 << 30)
		l := image.SizeLimit{}
		bound, _ := l.Bound("x", ev)
		err = tl.CheckSize(context.Background(), ApplyOptions{Name: "x", Evidence: ev})
		if (err == nil) != (end*BlockSize <= bound) {
			t.Fatalf("end %d evidence %d bound %d: %v", end, ev, bound, err)
		}
	}
}
