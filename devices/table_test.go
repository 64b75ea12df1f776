package devices

import (
	"strings"
	"testing"
)

// A table entry states where the partition sizes come from; the rules that make it trustworthy are
// enforced on load.
func TestTableValidation(t *testing.T) {
	base := `codename: x
vendor: V
names: [X]
soc: S
products: [x]
`
	for _, tc := range []struct {
		head, parts, table, err string
	}{
		{"ab: true\ndynamic: false", "{name: modem, size: 4096, fs: raw}", "{from: getvar, source: https://example.org/x, complete: true}", ""},
		{"ab: true\ndynamic: false", "{name: modem, fs: raw}", "{from: getvar, source: https://example.org/x, complete: true}", "has no size"},
		{"ab: true\ndynamic: false", "{name: modem, fs: raw}", "{from: getvar, source: https://example.org/x, complete: false}", ""},
		{"ab: true\ndynamic: false", "{name: modem_a, size: 4096, fs: raw}", "{from: getvar, source: https://example.org/x}", "without its _a/_b suffix"},
		{"ab: false\ndynamic: false", "{name: xbl_a, size: 4096, fs: raw}", "{from: rawprogram, source: https://example.org/x, complete: true}", ""}, // A-only: literal names
		{"ab: true\ndynamic: false", "{name: modem, size: 4096, fs: raw}", "{from: hearsay, source: https://example.org/x}", "table.from"},
		{"ab: true\ndynamic: false", "{name: modem, size: 4096, fs: raw}", "{from: getvar}", "table.source is required"},
		{"ab: true\ndynamic: true\nsuper: {size: 8192, metadata_size: 4096, metadata_slots: 2}", "{name: super, size: 4096, fs: raw, no_slot: true}", "{from: getvar, source: https://example.org/x}", "super.size says 8192"},
		{"ab: true\ndynamic: true\nsuper: {size: 8192, metadata_size: 4096, metadata_slots: 2}", "{name: super, size: 8192, fs: raw, no_slot: true}", "{from: getvar, source: https://example.org/x}", ""},
	} {
		y := base + tc.head + "\npartitions:\n  - " + tc.parts + "\ntable: " + tc.table + "\n"
		_, err := Parse("x.yaml", []byte(y))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s / %s: %v", tc.parts, tc.table, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s / %s: error %v, want %q", tc.parts, tc.table, err, tc.err)
		}
	}
}

// Every builtin device either cites a table for its partition sizes or says in its notes why it has
// none, and a complete table's physical partitions all have sizes (checked on load, counted here).
func TestBuiltinTables(t *testing.T) {
	c, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	complete := 0
	for _, d := range c.Devices {
		if d.Table == nil {
			if !strings.Contains(d.Notes, "Partition table") {
				t.Errorf("%s: no table and no note saying why", d.Codename)
			}
			continue
		}
		if d.Table.Complete {
			complete++
		}
		physical := 0
		for _, p := range d.Partitions {
			if !p.Logical {
				physical++
			}
		}
		// A full table lists firmware too: far more than the handful romforge writes.
		if d.Table.Complete && physical < 20 {
			t.Errorf("%s: a complete %s table with %d physical partitions", d.Codename, d.Table.From, physical)
		}
	}
	t.Logf("%d of %d devices carry a complete partition table", complete, len(c.Devices))
}
