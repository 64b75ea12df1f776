package flash

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/romforge/romforge/bundle"
	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash/plan"
	"github.com/romforge/romforge/internal/failure"
)

// Property: the chosen plan is for the phone's product; when some plan for it matches the phone's slot
// layout and anti-rollback, the choice is one of those with the highest anti-rollback version; a
// product nobody has a plan for is ErrNoBundle.
func TestChooseProperty(t *testing.T) {
	cat, err := devices.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	ab, _ := cat.Lookup("alioth")
	aonly, _ := cat.Lookup("lavender")
	if !ab.AB || aonly.AB {
		t.Fatal("catalog: alioth should be A/B and lavender A-only")
	}
	enforced := func(d *devices.Device) *devices.Device {
		c := *d
		c.AntiRollback = devices.AntiRollback{Enforced: true, Var: "anti"}
		return &c
	}
	ab, aonly = enforced(ab), enforced(aonly)
	products := []string{"p1", "p2", "p3"}
	rng := rand.New(rand.NewPCG(21, 22))
	for iter := 0; iter < 2000; iter++ {
		var cands []Candidate
		for i := rng.IntN(6); i > 0; i-- {
			d := aonly
			if rng.IntN(2) == 0 {
				d = ab
			}
			cands = append(cands, Candidate{Name: fmt.Sprintf("b%d", i), Plan: &plan.Plan{Device: d,
				Products: []string{products[rng.IntN(3)]}, AntiVersion: rng.IntN(6) - 1}})
		}
		pr := probe{product: products[rng.IntN(3)], slotCount: []int{0, 1, 2}[rng.IntN(3)], anti: map[string]string{}}
		devAnti := int64(-1)
		if rng.IntN(3) > 0 {
			devAnti = int64(rng.IntN(5))
			pr.anti["anti"] = strconv.FormatInt(devAnti, 10)
		}
		got, _, err := choose(cands, pr)
		var forProduct, fit []Candidate
		for _, c := range cands {
			if c.Plan.Products[0] != pr.product {
				continue
			}
			forProduct = append(forProduct, c)
			if c.Plan.Device.AB == (pr.slotCount >= 2) && (c.Plan.AntiVersion < 0 || devAnti < 0 || int64(c.Plan.AntiVersion) >= devAnti) {
				fit = append(fit, c)
			}
		}
		switch {
		case len(forProduct) == 0:
			if !errors.Is(err, ErrNoBundle) {
				t.Fatalf("iter %d: no plan for %s but err %v", iter, pr.product, err)
			}
			continue
		case err != nil:
			t.Fatalf("iter %d: %v", iter, err)
		case got.Plan.Products[0] != pr.product:
			t.Fatalf("iter %d: chose a plan for %s on a %s", iter, got.Plan.Products[0], pr.product)
		}
		if len(forProduct) > 1 && len(fit) > 0 {
			best := -2
			isFit := false
			for _, c := range fit {
				best = max(best, c.Plan.AntiVersion)
				isFit = isFit || c.Name == got.Name && c.Plan == got.Plan
			}
			if !isFit || got.Plan.AntiVersion != best {
				t.Fatalf("iter %d: chose %s (anti %d, A/B %v) among %d fitting, best anti %d; phone slots %d anti %d",
					iter, got.Name, got.Plan.AntiVersion, got.Plan.Device.AB, len(fit), best, pr.slotCount, devAnti)
			}
		}
	}
	if _, _, err := choose(nil, probe{}); !errors.Is(err, failure.ErrRefused) {
		t.Fatalf("a phone that does not say its product: %v, want a refusal", err)
	}
}

func TestLoadBundles(t *testing.T) {
	cat, _ := devices.Builtin()
	root := t.TempDir()
	if IsBundlesFolder(root) {
		t.Fatal("an empty folder is not a bundles folder")
	}
	if _, err := LoadBundles(root, cat); !errors.Is(err, failure.ErrUsage) {
		t.Fatalf("empty folder: %v", err)
	}
	for _, code := range []string{"lavender", "armani"} {
		dir := filepath.Join(root, code+"-build")
		os.MkdirAll(filepath.Join(dir, "images"), 0o755)
		os.WriteFile(filepath.Join(dir, "images", "boot.img"), make([]byte, 4096), 0o644)
		m := &bundle.Manifest{Format: 1, Device: code, Products: []string{code}, AntiVersion: -1,
			Steps: []plan.Step{{Op: plan.OpFlash, Partition: "boot", Image: "images/boot.img"}}}
		if err := bundle.Write(dir, m); err != nil {
			t.Fatal(err)
		}
	}
	if !IsBundlesFolder(root) || IsBundlesFolder(filepath.Join(root, "armani-build")) {
		t.Fatal("bundles folder detection")
	}
	cands, err := LoadBundles(root, cat)
	if err != nil || len(cands) != 2 || cands[0].Name != "armani-build" || cands[1].Plan.Codename != "lavender" {
		t.Fatalf("%v %+v", err, cands)
	}
	if !strings.HasPrefix(cands[0].Plan.Steps[0].Image, root) {
		t.Fatalf("image path %q not inside the bundle", cands[0].Plan.Steps[0].Image)
	}
	// A damaged bundle fails the whole load, naming it.
	os.WriteFile(filepath.Join(root, "lavender-build", bundle.ManifestName), []byte("{"), 0o644)
	if _, err := LoadBundles(root, cat); err == nil || !strings.Contains(err.Error(), "lavender-build") || !errors.Is(err, failure.ErrInvalid) {
		t.Fatalf("damaged bundle: %v", err)
	}
}
