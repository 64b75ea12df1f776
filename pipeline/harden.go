package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/bootimg"
	"github.com/romforge/romforge/patches"
)

// bootImages are the partitions whose ramdisks hold init scripts and props the hardening covers.
func isBootImage(name string) bool {
	n := strings.TrimSuffix(strings.TrimSuffix(name, "_a"), "_b")
	return n == "boot" || n == "init_boot" || n == "vendor_boot"
}

// openRamdisks reads the ramdisks of the boot images among parts (as trees the audit and the closure
// work on, named "boot-ramdisk", "vendor_boot-vendor_ramdisk00", …). A boot image romforge cannot read
// is left as it is, with a note.
func openRamdisks(parts []*part, logf func(string, ...any)) (map[string][]*patches.BootRamdisk, error) {
	out := map[string][]*patches.BootRamdisk{}
	for _, p := range parts {
		if p.fs != nil || !isBootImage(p.name) {
			continue
		}
		f, err := image.OpenFile(p.work)
		if err != nil {
			return nil, err
		}
		rds, notes, err := patches.ReadBootRamdisks(f, f.Size(), p.name)
		f.Close()
		if err != nil {
			logf("%s: ramdisk not audited: %v", p.name, err)
			continue
		}
		for _, n := range notes {
			logf("%s", n)
		}
		if len(rds) > 0 {
			out[p.name] = rds
		}
	}
	return out, nil
}

// writeRamdisks writes what the hardening changed in a boot image's ramdisks back into the image at
// path (same compression, every other entry and section byte-identical). It reports the changed files.
func writeRamdisks(ctx context.Context, path, work string, rds []*patches.BootRamdisk, target *patches.Target) ([]patches.FileChange, error) {
	var changes []patches.FileChange
	type edit struct {
		section string
		data    []byte
	}
	var edits []edit
	for _, rd := range rds {
		o := target.Overlay(rd.Name)
		if o == nil || len(o.Changes()) == 0 {
			continue
		}
		changed, err := patches.ApplyToRamdisk(rd.Ramdisk, o)
		if err != nil {
			return nil, fmt.Errorf("build: %s: %w", rd.Name, err)
		}
		if !changed {
			continue
		}
		b, err := rd.Ramdisk.Bytes()
		if err != nil {
			return nil, fmt.Errorf("build: %s: %w", rd.Name, err)
		}
		edits = append(edits, edit{rd.Section, b})
		for _, c := range o.Changes() {
			changes = append(changes, patches.FileChange{Path: rd.Name + "/" + c.Path, Action: string(c.Kind)})
		}
	}
	if len(edits) == 0 {
		return nil, nil
	}
	f, err := image.OpenFile(path)
	if err != nil {
		return nil, err
	}
	im, err := bootimg.Parse(f, f.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	dir := filepath.Join(work, "ramdisk-"+filepath.Base(path))
	os.RemoveAll(dir)
	_, err = im.Unpack(ctx, dir)
	f.Close()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for _, e := range edits {
		if err := os.WriteFile(filepath.Join(dir, e.section), e.data, 0o644); err != nil {
			return nil, err
		}
	}
	out, err := bootimg.Repack(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("build: repacking %s: %w", filepath.Base(path), err)
	}
	defer out.Close()
	tmp := path + ".new"
	w, err := os.Create(tmp)
	if err != nil {
		return nil, err
	}
	_, err = out.WriteTo(w)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return changes, os.Rename(tmp, path)
}
