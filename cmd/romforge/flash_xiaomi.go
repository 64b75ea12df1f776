package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash/plan"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/rom"
	"github.com/romforge/romforge/rom/xiaomi"
)

func init() { planLoaders = append(planLoaders, loadXiaomiPlan) }

// loadXiaomiPlan turns a Xiaomi fastboot ROM's flash script (parsed, never run) into a plan; a .tgz
// is unpacked into the cache first (refusing path escapes). User data is kept unless --wipe or a named
// --script says otherwise (xiaomi.Choose picks the script and drops wipe steps, saying so in the notes).
func loadXiaomiPlan(target string, d *devices.Device, o planOptions) (*plan.Plan, bool, error) {
	in, err := rom.Detect(target)
	if err != nil || (in.Kind != rom.KindXiaomiFastbootTGZ && in.Kind != rom.KindXiaomiFastbootDir) {
		return nil, false, nil
	}
	r, err := xiaomi.Open(context.Background(), target)
	if err != nil {
		return nil, true, err
	}
	choice, err := r.Choose(o.Script, o.Wipe)
	if err != nil {
		return nil, true, err
	}
	if d == nil {
		cat, err := loadCatalog()
		if err != nil {
			return nil, true, err
		}
		var ambiguous []string
		for _, p := range r.Products {
			ds := cat.ByProduct(p)
			if len(ds) == 1 {
				d = ds[0]
				break
			}
			// Siblings share products (willow's phones also answer ginkgo): the device named after
			// the product is the ROM's own.
			for _, c := range ds {
				if strings.EqualFold(c.Codename, p) {
					d = c
				}
				ambiguous = append(ambiguous, c.Codename)
			}
			if d != nil {
				break
			}
		}
		if d == nil && len(ambiguous) > 0 {
			return nil, true, failure.Kinded(failure.ErrUsage, fmt.Errorf("flash: the ROM is for %s, which several catalog devices answer (%s); pass --device", strings.Join(r.Products, ", "), strings.Join(ambiguous, ", ")))
		}
		if d == nil {
			return nil, true, failure.Kinded(failure.ErrUsage, fmt.Errorf("flash: the ROM is for %s, which the catalog does not know; pass --device", strings.Join(r.Products, ", ")))
		}
	}
	root := filepath.Join(target, r.Root)
	if !in.IsDir {
		cache := o.Cache
		if cache == "" {
			cache = defaultCacheDir()
		}
		dir, err := unpackFolder(cache, target)
		if err != nil {
			return nil, true, err
		}
		if _, err := os.Stat(filepath.Join(dir, ".complete")); err != nil {
			os.RemoveAll(dir)
			f, err := os.Open(target)
			if err != nil {
				return nil, true, err
			}
			err = xiaomi.Extract(context.Background(), f, r.Root, dir, nil, nil)
			f.Close()
			if err != nil {
				return nil, true, err
			}
			os.WriteFile(filepath.Join(dir, ".complete"), nil, 0o644)
		}
		root = dir
	}
	p := &plan.Plan{Device: d, Codename: d.Codename, Products: r.Products, AntiVersion: r.AntiVersion, Notes: choice.Notes}
	for _, s := range choice.Steps {
		st := plan.Step{Op: s.Op, Partition: s.Partition}
		switch s.Op {
		case xiaomi.OpWipe:
			// fastboot -w: userdata, and cache and metadata where the phone has them.
			for _, part := range wipedBy(d) {
				p.Steps = append(p.Steps, plan.Step{Op: plan.OpErase, Partition: part})
			}
			continue
		case xiaomi.OpFormat:
			st.Op = plan.OpErase // fastboot format = erase plus a fresh filesystem the OS makes on boot
		case xiaomi.OpFlash:
			st.Image = filepath.Join(root, filepath.FromSlash(s.Image))
			st.Partition = strings.TrimSuffix(s.Partition, "_ab")
			// "flash xbl_a": one slot on an A/B phone, or a partition whose name ends in _a on an A-only
			// one (SDM845's firmware copies). Either way the script named that exact partition.
			if s.Slot == "a" || s.Slot == "b" {
				st.Partition = s.Partition + "_" + s.Slot
			}
			if s.Slot == "all" && p.Slot == "" && d.AB {
				p.Slot = "all"
			}
			if cp, ok := d.Partition(strings.TrimSuffix(strings.TrimSuffix(st.Partition, "_a"), "_b")); ok {
				st.Logical = cp.Logical
			}
		case "set_active":
			st.Slot = s.Slot
		}
		p.Steps = append(p.Steps, st)
	}
	return p, true, nil
}

// wipedBy lists what fastboot -w erases on d: userdata, plus metadata on dynamic-partition phones and
// cache on the A-only phones that have one (the AOSP client skips the ones the phone lacks).
func wipedBy(d *devices.Device) []string {
	parts := []string{"userdata"}
	_, hasCache := d.Partition("cache")
	if hasCache || (!d.AB && !d.Dynamic) {
		parts = append(parts, "cache")
	}
	_, hasMeta := d.Partition("metadata")
	if hasMeta || d.Dynamic {
		parts = append(parts, "metadata")
	}
	return parts
}

// unpackFolder names the cache folder an archive is unpacked into. It carries the archive's size and
// modification time, so another ROM saved under the same file name never reuses an old unpacking (its
// images would be flashed without any hash to catch it).
func unpackFolder(cache, archive string) (string, error) {
	st, err := os.Stat(archive)
	if err != nil {
		return "", err
	}
	abs, _ := filepath.Abs(archive)
	id := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d", abs, st.Size(), st.ModTime().UnixNano())))
	base := strings.TrimSuffix(filepath.Base(archive), filepath.Ext(archive))
	return filepath.Join(cache, "xiaomi", base+"-"+hex.EncodeToString(id[:6])), nil
}
