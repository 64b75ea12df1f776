package devices

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/romforge/romforge/internal/failure"
)

// bootloaderVars answers getvar all for a phone with these physical partitions, the way its bootloader
// would: every slot of a slotted partition, Qualcomm's 0x-hex or MediaTek's bare hex, plus variables
// that are not partitions.
func bootloaderVars(d *Device, parts []Partition, rng *rand.Rand) map[string]string {
	vars := map[string]string{"product": d.Products[rng.IntN(len(d.Products))], "unlocked": "yes", "is-userspace": "no", "max-download-size": "0x20000000"}
	size := func(n int64) string {
		if d.MediaTek() {
			return fmt.Sprintf("%x", n)
		}
		return fmt.Sprintf("0x%X", n)
	}
	for _, p := range parts {
		names := []string{p.Name}
		if d.AB && !p.NoSlot {
			names = []string{p.Name + "_a", p.Name + "_b"}
		}
		for _, n := range names {
			vars["partition-size:"+n] = size(p.Size)
			typ := p.FS
			if typ == "raw" && d.MediaTek() {
				typ = "raw data"
			}
			vars["partition-type:"+n] = typ
		}
	}
	return vars
}

// Property: for every catalog device, a table made up at random (names, sizes, slots, filesystems) and
// answered by its bootloader in its vendor's style reads back as that table.
func TestTableFromVarsRoundTrip(t *testing.T) {
	c, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(50, 51))
	for round := range 300 {
		d := c.Devices[rng.IntN(len(c.Devices))]
		var want []Partition
		for i := range 1 + rng.IntN(60) {
			p := Partition{Name: fmt.Sprintf("p%d_%d", i, rng.IntN(1000)), Size: (1 + rng.Int64N(1<<22)) << 12, FS: []string{"raw", "ext4", "f2fs"}[rng.IntN(3)]}
			p.NoSlot = d.AB && rng.IntN(2) == 0
			want = append(want, p)
		}
		slices.SortFunc(want, func(a, b Partition) int { return strings.Compare(a.Name, b.Name) })
		vars := bootloaderVars(d, want, rng)
		got, err := TableFromVars(d, vars)
		if err != nil {
			t.Fatalf("round %d (%s): %v", round, d.Codename, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d (%s):\n got %+v\nwant %+v", round, d.Codename, got, want)
		}
		// Merged into the device it passes the catalog's own rules, and DiffTable then finds nothing.
		merged, err := d.WithTable(got, &Table{From: "getvar", Source: "test", Complete: false})
		if err != nil {
			t.Fatalf("round %d (%s): merging: %v", round, d.Codename, err)
		}
		for _, df := range merged.DiffTable(got) {
			if df.Table != 0 {
				t.Fatalf("round %d (%s): after merging, %+v still differs", round, d.Codename, df)
			}
		}
	}
}

func TestTableFromVarsRejects(t *testing.T) {
	c, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	spes, _ := c.Lookup("spes")
	vayu, _ := c.Lookup("vayu")
	ok := map[string]string{"product": "spes", "partition-size:boot_a": "0x8000000", "partition-size:boot_b": "0x8000000"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range ok {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name string
		d    *Device
		vars map[string]string
		kind error
		msg  string
	}{
		{"fastbootd", spes, with("is-userspace", "yes"), failure.ErrInvalid, "fastboot reboot bootloader"},
		{"other phone", vayu, ok, failure.ErrRefused, `product is "spes"`},
		{"no product", spes, with("product", ""), failure.ErrRefused, "product"},
		{"lone slot", spes, with("partition-size:boot_b", ""), failure.ErrInvalid, "boot_b"},
		{"slots differ", spes, with("partition-size:boot_b", "0x4000000"), failure.ErrInvalid, "differ"},
		{"bare digits", spes, with("partition-size:modem", "2000000"), failure.ErrInvalid, "hex or decimal"},
		{"not a size", spes, with("partition-size:modem", "0xzz"), failure.ErrInvalid, "not a size"},
		{"hostile name", spes, with("partition-size:../x", "0x1000"), failure.ErrInvalid, "not a partition name"},
		{"no partitions", spes, map[string]string{"product": "spes"}, failure.ErrInvalid, "no partition-size"},
	} {
		_, err := TableFromVars(tc.d, tc.vars)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v mentioning %q", tc.name, err, tc.kind, tc.msg)
		}
	}
	// Snapshots and logical partitions are not the table; a bare-hex answer is read as hex once another
	// bare answer shows hex letters.
	got, err := TableFromVars(spes, with("partition-size:system_a-cow", "0x1000"))
	if err != nil || len(got) != 1 {
		t.Errorf("cow: %+v %v", got, err)
	}
	m := with("partition-size:userdata", "1990bd3000")
	m["partition-size:misc"] = "100000"
	got, err = TableFromVars(spes, m)
	if err != nil {
		t.Fatal(err)
	}
	if p := got[slices.IndexFunc(got, func(p Partition) bool { return p.Name == "misc" })]; p.Size != 0x100000 {
		t.Errorf("bare misc read as %d", p.Size)
	}
}

// A user catalog file with a phone's table (what 'romforge devices table' writes) is merged into the
// builtin device; one without a table: entry, or with a logical partition, is refused.
func TestUserTableAddition(t *testing.T) {
	c, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	good := `codename: vayu
partitions:
  - {name: recovery, size: 67108864, fs: raw}
  - {name: modem, size: 188743680, fs: raw}
table: {from: getvar, source: "getvar all of phone abc on 2026-12-06", complete: true}
`
	out, err := c.WithUser(fstest.MapFS{"vayu.yaml": {Data: []byte(good)}}, "/u")
	if err != nil {
		t.Fatal(err)
	}
	d, _ := out.Lookup("vayu")
	if p, _ := d.Partition("recovery"); p.Size != 67108864 {
		t.Errorf("recovery %d", p.Size)
	}
	if p, ok := d.Partition("modem"); !ok || p.Size != 188743680 {
		t.Errorf("modem %+v %v", p, ok)
	}
	if p, _ := d.Partition("system"); !p.Logical {
		t.Error("logical system lost")
	}
	if d.Table == nil || d.Table.Origin == "" || !d.Table.Complete {
		t.Errorf("table %+v", d.Table)
	}
	if orig, _ := c.Lookup("vayu"); orig.Table != nil || len(orig.Partitions) == len(d.Partitions) {
		t.Error("the builtin catalog was modified")
	}
	for name, bad := range map[string]string{
		"logical": "codename: vayu\npartitions:\n  - {name: system, size: 4096, fs: ext4}\ntable: {from: getvar, source: x}\n",
		"unsized": "codename: vayu\npartitions:\n  - {name: modem, fs: raw}\ntable: {from: getvar, source: x, complete: true}\n",
		"no from": "codename: vayu\npartitions:\n  - {name: modem, size: 4096, fs: raw}\ntable: {source: x}\n",
	} {
		if _, err := c.WithUser(fstest.MapFS{"vayu.yaml": {Data: []byte(bad)}}, "/u"); !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TableFile's output, put in a user catalog, gives back the same table.
func TestTableFileRoundTrip(t *testing.T) {
	c, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(52, 53))
	for round := range 50 {
		d := c.Devices[rng.IntN(len(c.Devices))]
		var parts []Partition
		for i := range 1 + rng.IntN(30) {
			p := Partition{Name: fmt.Sprintf("fw%d#x,{y}%d", i, rng.IntN(9)), Size: 1 + rng.Int64N(1<<40), FS: "raw"}
			p.NoSlot = d.AB && rng.IntN(2) == 0
			parts = append(parts, p)
		}
		// A whole getvar all also sizes the physical partitions the catalog has without a size.
		for _, p := range d.Partitions {
			if !p.Logical && p.Size == 0 {
				parts = append(parts, Partition{Name: p.Name, Size: 1 + rng.Int64N(1<<33), FS: p.FS, NoSlot: p.NoSlot})
			}
		}
		tab := &Table{From: "getvar", Source: `getvar all "saved": x # y`, Complete: true}
		file := TableFile(d.Codename, parts, tab)
		out, err := c.WithUser(fstest.MapFS{"t.yaml": {Data: file}}, "/u")
		if err != nil {
			t.Fatalf("round %d (%s): %v\n%s", round, d.Codename, err, file)
		}
		got, _ := out.Lookup(d.Codename)
		if got.Table.Source != tab.Source || got.Table.From != "getvar" || !got.Table.Complete {
			t.Fatalf("round %d: table %+v", round, got.Table)
		}
		for _, p := range parts {
			q, ok := got.Partition(p.Name)
			if !ok || q.Size != p.Size || q.NoSlot != p.NoSlot {
				t.Fatalf("round %d (%s): %s = %+v %v, want %+v\n%s", round, d.Codename, p.Name, q, ok, p, file)
			}
		}
	}
}
