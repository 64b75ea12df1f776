package devices

import (
	"strings"
	"testing"
)

func TestNoSlotValidation(t *testing.T) {
	base := `codename: x
vendor: V
names: [X]
soc: S
products: [x]
dynamic: false
`
	for _, tc := range []struct {
		ab, part, err string
	}{
		{"ab: true", "{name: persist, size: 4096, fs: raw, no_slot: true}", ""},
		{"ab: false", "{name: persist, size: 4096, fs: raw, no_slot: true}", "no_slot only applies to A/B devices"},
	} {
		_, err := Parse("x.yaml", []byte(base+tc.ab+"\npartitions:\n  - "+tc.part+"\n"))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s %s: %v", tc.ab, tc.part, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s %s: error %v, want %q", tc.ab, tc.part, err, tc.err)
		}
	}
	d, err := Parse("x.yaml", []byte(base+"ab: true\npartitions:\n  - {name: persist, size: 4096, fs: raw, no_slot: true}\n  - {name: boot, size: 4096, fs: raw}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := d.Partition("persist"); !p.NoSlot {
		t.Error("no_slot not loaded")
	}
	if p, _ := d.Partition("boot"); p.NoSlot {
		t.Error("boot loaded as no_slot")
	}
}
