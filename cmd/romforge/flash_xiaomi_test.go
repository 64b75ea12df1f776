package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash/plan"
)

// TestXiaomiPlanWipeFlag: a script's fastboot -w becomes erases of what the phone has (userdata, plus
// metadata on dynamic phones, cache on old A-only ones) with --wipe, and nothing without it.
func TestXiaomiPlanWipeFlag(t *testing.T) {
	cat, err := devices.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		device string
		wiped  string
	}{
		{"spes", "userdata metadata"},
		{"armani", "userdata cache"},
		{"raphael", "userdata cache metadata"}, // A-only, no dynamic partitions; its table lists cache and metadata
		{"davinci", "userdata cache"},          // A-only; its (partial) table lists cache, no metadata
	} {
		d, _ := cat.Lookup(tc.device)
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "images"), 0o755)
		os.WriteFile(filepath.Join(dir, "images", "boot.img"), []byte("BOOT"), 0o644)
		script := "fastboot $* getvar product 2>&1 | grep \"^product: *" + d.Products[0] + "\"\nfastboot $* flash boot `dirname $0`/images/boot.img\nfastboot $* -w\nfastboot $* reboot\n"
		os.WriteFile(filepath.Join(dir, "flash_all.sh"), []byte(script), 0o755)
		erases := func(p *plan.Plan) string {
			var out []string
			for _, s := range p.Steps {
				if s.Op == plan.OpErase {
					out = append(out, s.Partition)
				}
			}
			return strings.Join(out, " ")
		}
		p, ok, err := loadXiaomiPlan(dir, d, planOptions{Wipe: true})
		if err != nil || !ok {
			t.Fatalf("%s: %v %v", tc.device, ok, err)
		}
		if got := erases(p); got != tc.wiped {
			t.Errorf("%s --wipe: erases %q, want %q", tc.device, got, tc.wiped)
		}
		p, _, err = loadXiaomiPlan(dir, d, planOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := erases(p); got != "" || !strings.Contains(strings.Join(p.Notes, "\n"), "fastboot -w") {
			t.Errorf("%s keeping data: erases %q, notes %q", tc.device, got, p.Notes)
		}
	}
}

// A script that names one slot (flash boot_b) keeps that slot on an A/B phone, and on an A-only phone
// whose firmware partitions are named xbl_a/xbl_b (SDM845) the name is the partition itself.
func TestXiaomiPlanExplicitSlotNames(t *testing.T) {
	cat, err := loadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ device, line, want string }{
		{"spes", "flash boot_b", "boot_b"},
		{"spes", "flash boot_ab", "boot"},
		{"beryllium", "flash xbl_a", "xbl_a"},
		{"beryllium", "flash boot", "boot"},
	} {
		d, _ := cat.Lookup(tc.device)
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "images"), 0o755)
		os.WriteFile(filepath.Join(dir, "images", "x.img"), []byte("X"), 0o644)
		script := "fastboot $* getvar product 2>&1 | grep \"^product: *" + d.Products[0] + "\"\nfastboot $* " + tc.line + " `dirname $0`/images/x.img\n"
		os.WriteFile(filepath.Join(dir, "flash_all.sh"), []byte(script), 0o755)
		p, ok, err := loadXiaomiPlan(dir, d, planOptions{})
		if err != nil || !ok {
			t.Fatalf("%s: %v %v", tc.line, ok, err)
		}
		var got []string
		for _, s := range p.Steps {
			if s.Op == plan.OpFlash {
				got = append(got, s.Partition)
			}
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s on %s: flashes %q, want %q", tc.line, tc.device, got, tc.want)
		}
	}
}
