package emulator

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
)

// TestServesEveryCatalogPartition: for every catalog device, each physical partition answers
// partition-size (the catalog's size when it has one), partition-type and has-slot as a bootloader
// would — slotted names on A/B phones unless the catalog says no_slot.
func TestServesEveryCatalogPartition(t *testing.T) {
	for _, name := range []string{"spes", "raphael", "alioth", "armani", "begonia", "miatoll"} {
		dev := catalogDevice(t, name)
		d, err := New(dev, Options{StateDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range dev.Partitions {
			if p.Logical {
				continue
			}
			names := []string{p.Name}
			wantSlot := "no"
			if dev.AB && !p.NoSlot {
				names = []string{p.Name + "_a", p.Name + "_b"}
				wantSlot = "yes"
			}
			if v, ok := d.Var("has-slot:" + p.Name); !ok || v != wantSlot {
				t.Errorf("%s: has-slot:%s = %q %v, want %s", name, p.Name, v, ok, wantSlot)
			}
			for _, n := range names {
				v, ok := d.Var("partition-size:" + n)
				base := 0
				if dev.MediaTek() { // lk answers hex without 0x
					base = 16
				}
				size, err := strconv.ParseInt(v, base, 64)
				if !ok || err != nil || size <= 0 || (p.Size > 0 && size != p.Size) {
					t.Errorf("%s: partition-size:%s = %q %v, catalog %d", name, n, v, ok, p.Size)
				}
				if typ, ok := d.Var("partition-type:" + n); !ok || typ == "" {
					t.Errorf("%s: partition-type:%s = %q %v", name, n, typ, ok)
				}
			}
			if dev.AB && p.NoSlot {
				if _, ok := d.Var("partition-size:" + p.Name + "_a"); ok {
					t.Errorf("%s: %s is no_slot but %s_a exists", name, p.Name, p.Name)
				}
			}
		}
	}
}

// TestChangesRecordWrites: flashes and erases are counted per partition (and persist across a
// restart); getvar and a refused flash change nothing.
func TestChangesRecordWrites(t *testing.T) {
	dir := t.TempDir()
	d, serial := start(t, "spes", "tcp", Options{StateDir: dir})
	c := dial(t, serial)
	ctx := context.Background()
	img := bytes.Repeat([]byte{0xA5}, 4096)
	if err := c.Download(ctx, bytes.NewReader(img), int64(len(img)), nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"xbl_a", "xbl_b", "splash"} {
		if err := c.Flash(ctx, p); err != nil {
			t.Fatalf("flash %s: %v", p, err)
		}
	}
	if err := c.Erase(ctx, "metadata"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetVar(ctx, "partition-size:userdata"); err != nil {
		t.Fatal(err)
	}
	if err := c.Flash(ctx, "nonexistent"); err == nil {
		t.Fatal("flashing an unknown partition succeeded")
	}
	for name, want := range map[string]string{"xbl_a": "1", "userdata": "0", "splash": "1"} {
		if v, err := c.GetVar(ctx, "romforge-changes:"+name); err != nil || v != want {
			t.Errorf("getvar romforge-changes:%s = %q %v, want %s", name, v, err, want)
		}
	}
	if _, err := c.GetVar(ctx, "romforge-changes:nonexistent"); err == nil {
		t.Error("romforge-changes of an unknown partition answered")
	}
	want := map[string]int64{"xbl_a": 1, "xbl_b": 1, "splash": 1, "metadata": 1}
	if got := d.Changes(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("changes %v, want %v", got, want)
	}
	// A new emulator on the same state directory remembers them (state.json).
	d2, err := New(catalogDevice(t, "spes"), Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := d2.Changes(); got["userdata"] != 0 || got["xbl_a"] != 1 || len(got) != 4 {
		t.Errorf("changes after restart %v", got)
	}
}
