package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/bootimg"
	"github.com/romforge/romforge/image/cpio"
	"github.com/romforge/romforge/patches"
)

// patchRamdisk applies the sets' init steps to the .rc files in a boot image's ramdisk and rewrites the
// image when something changed (same compression, every other entry byte-identical). It returns what
// changed; a boot image whose ramdisk is not a cpio archive is left alone.
func patchRamdisk(ctx context.Context, path, work string, sets []*patches.Set) ([]patches.FileChange, error) {
	f, err := image.OpenFile(path)
	if err != nil {
		return nil, err
	}
	im, err := bootimg.Parse(f, f.Size())
	if err != nil {
		f.Close()
		return nil, nil // not a boot image we understand: nothing to edit
	}
	dir := filepath.Join(work, "ramdisk-"+filepath.Base(path))
	os.RemoveAll(dir)
	if _, err := im.Unpack(ctx, dir); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	rdPath := filepath.Join(dir, "ramdisk")
	b, err := os.ReadFile(rdPath)
	if err != nil {
		return nil, nil // no ramdisk (boot v3+ with the ramdisk in vendor_boot/init_boot)
	}
	rd, err := cpio.ParseRamdisk(b)
	if err != nil {
		return nil, nil
	}
	var changes []patches.FileChange
	for _, name := range rd.Files() {
		if !strings.HasSuffix(name, ".rc") {
			continue
		}
		old, err := rd.ReadFile(name)
		if err != nil {
			continue
		}
		text, detail := patches.EditInitText(string(old), sets)
		if text == string(old) {
			continue
		}
		if err := rd.Replace(name, []byte(text)); err != nil {
			return nil, err
		}
		changes = append(changes, patches.FileChange{Path: "ramdisk/" + name, Action: "modified", OldSize: int64(len(old)), NewSize: int64(len(text)), Detail: detail})
	}
	if len(changes) == 0 {
		return nil, nil
	}
	nb, err := rd.Bytes()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(rdPath, nb, 0o644); err != nil {
		return nil, err
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
	os.RemoveAll(dir)
	return changes, os.Rename(tmp, path)
}
