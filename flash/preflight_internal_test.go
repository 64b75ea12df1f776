package flash

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Property: however a bootloader writes a partition size (0x-hex from Qualcomm and fastbootd, bare hex
// from MediaTek's lk, with or without a catalog size to compare), the reading is either the true size or,
// when the answer cannot be told apart, a smaller one: an ambiguity may refuse an image that fits, never
// pass one that does not.
func TestPartitionSizeReadings(t *testing.T) {
	rng := rand.New(rand.NewPCG(30, 31))
	for range 20000 {
		// Sizes as phones have them: mostly multiples of 4 KiB, some odd.
		size := int64(rng.IntN(1<<20)+1) << (rng.IntN(20))
		if rng.IntN(8) == 0 {
			size = rng.Int64N(1 << 40)
		}
		var catalog int64
		if rng.IntN(2) == 0 {
			catalog = size
		}
		mediatek := rng.IntN(2) == 0
		var answer string
		switch {
		case mediatek:
			answer = fmt.Sprintf("%x", size) // lk
		case rng.IntN(2) == 0:
			answer = fmt.Sprintf("0x%x", size) // ABL, fastbootd
		default:
			answer = fmt.Sprintf("0x%X", size)
		}
		got, ok := partitionSize(answer, catalog, mediatek)
		if !ok || got != size {
			t.Fatalf("%q (catalog %d, mediatek %v) read as %d %v, want %d", answer, catalog, mediatek, got, ok, size)
		}
		// The same bare answer on a phone not known to be MediaTek and without a matching catalog size:
		// never more than the true size.
		bare := fmt.Sprintf("%x", size)
		got, ok = partitionSize(bare, 0, false)
		if !ok || got > size {
			t.Fatalf("bare %q on an unknown phone read as %d %v: more than the true %d", bare, got, ok, size)
		}
	}
	for _, bad := range []string{"", "-1", "0x", "zz", "4148mV", "99999999999999999999"} {
		if n, ok := partitionSize(bad, 0, true); ok {
			t.Errorf("%q read as %d", bad, n)
		}
	}
}
