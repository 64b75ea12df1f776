package image

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/romforge/romforge/internal/failure"
)

// Random declarations against random evidence: Check accepts exactly what Bound allows, every refusal is
// invalid input naming the partition, and no bound exceeds HardLimit.
func TestSizeLimitProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 20000; i++ {
		l := SizeLimit{}
		switch r.IntN(3) {
		case 1:
			l.Max = r.Int64N(HardLimit * 2)
		case 2:
			l.Partitions = map[string]int64{"system": r.Int64N(HardLimit * 2)}
		}
		evidence := r.Int64N(1 << r.IntN(63))
		size := r.Int64N(1 << r.IntN(63))
		bound, _ := l.Bound("system", evidence)
		if bound > HardLimit || bound <= 0 {
			t.Fatalf("%+v evidence %d: bound %d", l, evidence, bound)
		}
		if l.Max == 0 && l.Partitions == nil && bound < min(int64(FloorLimit), HardLimit) {
			t.Fatalf("ratio bound %d below the floor", bound)
		}
		err := l.Check("system", size, evidence)
		if (err == nil) != (size <= bound) {
			t.Fatalf("%+v evidence %d size %d bound %d: %v", l, evidence, size, bound, err)
		}
		if err != nil && !errors.Is(err, failure.ErrInvalid) {
			t.Fatalf("refusal %v is not invalid input", err)
		}
	}
	if err := (SizeLimit{}).Check("x", 1<<40, 4096); err == nil {
		t.Fatal("4 KiB of evidence for a terabyte accepted")
	}
	if err := (SizeLimit{}).Check("x", 4<<30, 8<<20); err != nil {
		t.Fatalf("8 MiB describing 4 GiB refused: %v", err)
	}
	if got := SizeLimitFrom(WithSizeLimit(context.Background(), SizeLimit{Max: 5})); got.Max != 5 {
		t.Fatalf("context limit %+v", got)
	}
}

func TestParseSize(t *testing.T) {
	for s, want := range map[string]int64{"4096": 4096, "0x1000": 4096, "512M": 512 << 20, "2G": 2 << 30, "1T": 1 << 40, "4t": 4 << 40} {
		if got, err := ParseSize(s); err != nil || got != want {
			t.Errorf("%q: %d, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "0", "-1", "5T", "12abc", "G", "1.5G", "99999999999999999999"} {
		if _, err := ParseSize(s); !errors.Is(err, failure.ErrUsage) {
			t.Errorf("%q: %v, want a usage error", s, err)
		}
	}
}
