package image

import (
	"context"
	"fmt"
	"strconv"

	"github.com/romforge/romforge/internal/failure"
)

// A container (payload, block OTA) declares each partition's size; a few hostile bytes can declare a
// terabyte, which then costs hours of writing and hashing holes. SizeLimit bounds a declared size by
// evidence, in this order:
//
//  1. Max, the user's explicit --max-image-size, when set;
//  2. else the catalog's size of the partition, when the device and the partition are known;
//  3. else RatioLimit × the bytes of input data that describe the image, but at least FloorLimit.
//
// HardLimit bounds all three: no phone partition comes near it, and larger files fail on common
// filesystems with "file too large", which would hide that the input is what is wrong.
const (
	// RatioLimit: real images compress at most a few hundred to one, even with large zero runs
	// described by ZERO operations or erase ranges; 1024:1 leaves room without letting a 4 KiB input
	// declare a terabyte.
	RatioLimit = 1024
	// FloorLimit keeps tiny legitimate inputs (a mostly-empty partition) working.
	FloorLimit = 256 << 20
	// HardLimit is 4 TiB.
	HardLimit = 4 << 40
)

// SizeLimit bounds declared partition sizes; the zero value applies the ratio rule.
type SizeLimit struct {
	// Max is an explicit bound in bytes (the --max-image-size flag); 0 means none.
	Max int64
	// Partitions holds known partition sizes by name (the device catalog), without slot suffix.
	Partitions map[string]int64
}

// Check returns an invalid-input error when partition name, declared as size bytes by a container
// whose data for it is evidence bytes, exceeds the limit.
func (l SizeLimit) Check(name string, size, evidence int64) error {
	bound, why := l.Bound(name, evidence)
	if size < 0 || size > bound {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("partition %q declares %d bytes, more than %d (%s); if the image really is that large, pass --max-image-size", name, size, bound, why))
	}
	return nil
}

// Bound returns the largest size Check accepts for name and a phrase saying where it comes from.
func (l SizeLimit) Bound(name string, evidence int64) (int64, string) {
	switch {
	case l.Max > 0:
		return min(l.Max, HardLimit), "--max-image-size"
	case l.Partitions[name] > 0:
		return min(l.Partitions[name], HardLimit), "the device's partition size"
	}
	b := int64(FloorLimit)
	if evidence >= HardLimit/RatioLimit {
		b = HardLimit
	} else if evidence*RatioLimit > b {
		b = evidence * RatioLimit
	} else {
		return b, fmt.Sprintf("the %d MiB any input may declare; %d bytes of input data describe it", FloorLimit>>20, max(evidence, 0))
	}
	return b, fmt.Sprintf("%d× the %d bytes of input data describing it", RatioLimit, evidence)
}

type limitKey struct{}

// WithSizeLimit returns ctx carrying l, for packages that open containers behind an interface that
// does not take options (the pipeline's inputs); explicit options take precedence over it.
func WithSizeLimit(ctx context.Context, l SizeLimit) context.Context {
	return context.WithValue(ctx, limitKey{}, l)
}

// SizeLimitFrom returns the limit WithSizeLimit stored in ctx, or the zero SizeLimit.
func SizeLimitFrom(ctx context.Context) SizeLimit {
	l, _ := ctx.Value(limitKey{}).(SizeLimit)
	return l
}

// ParseSize parses a byte count such as 4096, 0x1000, 512M, 2G or 1T (binary units).
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		case 't', 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:n-1]
		}
	}
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil || v <= 0 || v > HardLimit/mult {
		return 0, failure.Kinded(failure.ErrUsage, fmt.Errorf("size %.40q is not a byte count in 1..%d (units K, M, G, T allowed)", s, int64(HardLimit)))
	}
	return v * mult, nil
}
