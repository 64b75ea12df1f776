package flash

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/romforge/romforge/bundle"
	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash/plan"
	"github.com/romforge/romforge/internal/failure"
)

// Candidate is one plan a batch may give a phone: a bundle of a bundles folder, or the one TARGET.
type Candidate struct {
	// Name says where the plan came from (the bundle's folder name, or the TARGET).
	Name string
	Plan *plan.Plan
}

// products are the getvar product answers the candidate's plan accepts.
func (c Candidate) products() []string {
	if len(c.Plan.Products) > 0 {
		return c.Plan.Products
	}
	if c.Plan.Device != nil {
		return c.Plan.Device.Products
	}
	return nil
}

// IsBundlesFolder reports whether dir is a folder of bundles (it holds no manifest itself, but at least
// one of its subfolders does).
func IsBundlesFolder(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, bundle.ManifestName)); err == nil {
		return false
	}
	ms, _ := filepath.Glob(filepath.Join(dir, "*", bundle.ManifestName))
	return len(ms) > 0
}

// LoadBundles reads every bundle directly under dir (each subfolder with a manifest.json), with its
// catalog device. A damaged bundle fails the load: flashing a shop's phones from a half-copied folder
// must not quietly skip the model whose bundle broke.
func LoadBundles(dir string, cat *devices.Catalog) ([]Candidate, error) {
	ms, err := filepath.Glob(filepath.Join(dir, "*", bundle.ManifestName))
	if err != nil {
		return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("flash: bundles folder %s: %w", dir, err))
	}
	sort.Strings(ms)
	var out []Candidate
	for _, m := range ms {
		bdir := filepath.Dir(m)
		man, err := bundle.Read(bdir)
		if err != nil {
			return nil, fmt.Errorf("flash: bundle %s: %w", bdir, err)
		}
		d, err := cat.Lookup(man.Device)
		if err != nil {
			return nil, fmt.Errorf("flash: bundle %s: %w", bdir, err)
		}
		p, err := bundle.Plan(bdir, man, d)
		if err != nil {
			return nil, fmt.Errorf("flash: bundle %s: %w", bdir, err)
		}
		out = append(out, Candidate{Name: filepath.Base(bdir), Plan: p})
	}
	if len(out) == 0 {
		return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("flash: %s holds no bundle (no */%s): build some with 'romforge build -o %s/CODENAME'", dir, bundle.ManifestName, dir))
	}
	return out, nil
}

// ErrNoBundle says no candidate is for the phone's product: the phone is skipped, not failed.
var ErrNoBundle = errors.New("no bundle for this phone")

// probe is what choosing a plan needs to know of a phone.
type probe struct {
	product   string
	serialno  string
	slotCount int
	anti      map[string]string // anti-rollback variable → answer ("" unknown)
}

func probeDevice(ctx context.Context, d Device, cands []Candidate) probe {
	pr := probe{product: getvar(ctx, d, "product"), serialno: getvar(ctx, d, "serialno"), anti: map[string]string{}}
	if n, ok := parseSize(getvar(ctx, d, "slot-count")); ok {
		pr.slotCount = int(n)
	}
	for _, c := range cands {
		if dev := c.Plan.Device; dev != nil && dev.AntiRollback.Enforced && dev.AntiRollback.Var != "" {
			if _, asked := pr.anti[dev.AntiRollback.Var]; !asked {
				pr.anti[dev.AntiRollback.Var] = getvar(ctx, d, dev.AntiRollback.Var)
			}
		}
	}
	return pr
}

// choose picks the candidate for a probed phone: its product first; among several for the product the
// ones whose slot layout matches the phone, then the ones its anti-rollback allows, then the highest
// anti-rollback version (the newest firmware the phone accepts), then by name. A phone no candidate
// is for gets ErrNoBundle. When every candidate for the product is unsuitable, the first is returned
// anyway so that pre-flight refuses it with every reason (a refusal, not a skip: the shop has a bundle
// for this model and should learn why it cannot go on this phone).
func choose(cands []Candidate, pr probe) (Candidate, string, error) {
	var byProduct []Candidate
	for _, c := range cands {
		for _, p := range c.products() {
			if pr.product != "" && strings.EqualFold(p, pr.product) {
				byProduct = append(byProduct, c)
				break
			}
		}
	}
	if len(byProduct) == 0 {
		if pr.product == "" {
			return Candidate{}, "", &plan.RefusedError{Reasons: []string{"the phone did not answer 'getvar product': is it in fastboot mode?"}}
		}
		return Candidate{}, "", fmt.Errorf("%w: no bundle for %s", ErrNoBundle, pr.product)
	}
	if len(byProduct) == 1 {
		return byProduct[0], "", nil
	}
	fit := byProduct[:0:0]
	for _, c := range byProduct {
		ab := pr.slotCount >= 2
		if c.Plan.Device != nil && c.Plan.Device.AB != ab {
			continue
		}
		if dev := c.Plan.Device; dev != nil && dev.AntiRollback.Enforced && c.Plan.AntiVersion >= 0 {
			if devAnti, ok := parseSize(pr.anti[dev.AntiRollback.Var]); ok && int64(c.Plan.AntiVersion) < devAnti {
				continue
			}
		}
		fit = append(fit, c)
	}
	if len(fit) == 0 {
		return byProduct[0], "", nil
	}
	sort.SliceStable(fit, func(i, j int) bool {
		if fit[i].Plan.AntiVersion != fit[j].Plan.AntiVersion {
			return fit[i].Plan.AntiVersion > fit[j].Plan.AntiVersion
		}
		return fit[i].Name < fit[j].Name
	})
	note := fmt.Sprintf("%d bundles fit %s; chose %s (anti-rollback version %d)", len(fit), pr.product, fit[0].Name, fit[0].Plan.AntiVersion)
	return fit[0], note, nil
}
