package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/romforge/romforge/fs/fsimage"
	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image/bootimg"
	"github.com/romforge/romforge/image/lp"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/internal/safeio"
	"github.com/romforge/romforge/patches"
	"github.com/romforge/romforge/pipeline"
)

func init() { openImageTarget = openFSImageTarget }

// partitionFromFile guesses a partition name from an image file name (system.img, vendor_a.sparse.img).
func partitionFromFile(p string) string {
	base := strings.ToLower(filepath.Base(p))
	base = strings.SplitN(base, ".", 2)[0]
	base = strings.TrimSuffix(strings.TrimSuffix(base, "_a"), "_b")
	for _, n := range []string{"system_ext", "system", "vendor_dlkm", "vendor", "product", "odm", "oem"} {
		if base == n {
			return n
		}
	}
	return "system"
}

// openFSImageTarget opens an ext4 or EROFS image (raw or sparse) as a one-partition target; a patched
// image is rebuilt like the source into -o, never over the input.
func openFSImageTarget(path, partition string) (*patchTarget, error) {
	img, err := fsimage.Open(path)
	if errors.Is(err, fsimage.ErrNotFilesystem) {
		return openContainerTarget(path)
	}
	if err != nil {
		return nil, err
	}
	if partition == "" {
		partition = partitionFromFile(path)
	}
	t := &patchTarget{trees: map[string]tree.Tree{partition: img}, image: true, closers: []func() error{img.Close}}
	t.writeImage = func(e *env, o *tree.Overlay, out string) error {
		abs, _ := filepath.Abs(out)
		in, _ := filepath.Abs(path)
		if abs == in {
			return usagef("patch: -o must differ from the input (the input is never modified)")
		}
		f, err := safeio.Create(out)
		if err != nil {
			return err
		}
		defer f.Abort()
		n, err := fsimage.Rebuild(e.ctx, f.File, img, o, fsimage.RebuildOptions{Progress: e.reporter()})
		if err == nil {
			err = f.Truncate(n)
		}
		if err != nil {
			return fmt.Errorf("patch: rebuilding %s: %w", img.Kind, err)
		}
		return f.Commit()
	}
	return t, nil
}

// openContainerTarget opens the filesystems inside a ROM container for auditing: super (logical
// partitions read in place), payload/OTA zips, Xiaomi fastboot ROMs (partitions unpacked to a temporary
// folder). Patching a container is the build command's job.
func openContainerTarget(path string) (*patchTarget, error) {
	t := &patchTarget{trees: map[string]tree.Tree{}, image: true}
	t.writeImage = func(*env, *tree.Overlay, string) error {
		return usagef("patch: %s is a ROM container; use 'romforge build' to patch and repack it", path)
	}
	if raw, c, err := sparse.Open(path); err == nil {
		if s, err := lp.NewReader(raw, raw.Size()); err == nil {
			t.closers = append(t.closers, c.Close)
			md, err := s.Metadata(0)
			if err != nil {
				return nil, err
			}
			for _, p := range md.Partitions {
				pi, err := s.Partition(0, p.Name)
				if err != nil || pi.Size() == 0 {
					continue
				}
				if fsi, err := fsimage.OpenImage(pi); err == nil {
					t.trees[p.Name] = fsi
				}
			}
			return t, nil
		}
		c.Close()
	}
	in, err := pipeline.Open(path, nil)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	dir, err := os.MkdirTemp("", "romforge-audit-*")
	if err != nil {
		return nil, err
	}
	t.closers = append(t.closers, func() error { return os.RemoveAll(dir) })
	for _, p := range in.Partitions() {
		file := filepath.Join(dir, p+".img")
		if err := in.Extract(context.Background(), p, file); err != nil {
			t.close()
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		fsi, err := fsimage.Open(file)
		if err != nil {
			// Not a filesystem: a boot image's ramdisks and a super's logical partitions are audited
			// too; anything else (vbmeta, dtbo) holds nothing to audit.
			if n, err := addInnerTrees(t, p, file); err != nil {
				t.close()
				return nil, fmt.Errorf("%s: %w", p, err)
			} else if n == 0 {
				os.Remove(file)
			}
			continue
		}
		t.closers = append([]func() error{fsi.Close}, t.closers...)
		t.trees[p] = fsi
	}
	if len(t.trees) == 0 {
		t.close()
		return nil, fmt.Errorf("%s: no ext4 or EROFS partition inside", path)
	}
	return t, nil
}

// addInnerTrees adds the ramdisks of a boot, init_boot or vendor_boot image, or the slot-0 logical
// partitions of a super image, to t; it returns how many trees it added.
func addInnerTrees(t *patchTarget, part, file string) (int, error) {
	f, c, err := sparse.Open(file) // raw or sparse
	if err != nil {
		return 0, nil // neither: nothing to audit inside
	}
	head := make([]byte, 8)
	f.ReadAt(head, 0)
	name := strings.TrimSuffix(strings.TrimSuffix(part, "_a"), "_b")
	if bootimg.IsBootImage(head) {
		defer c.Close()
		rds, _, err := patches.ReadBootRamdisks(f, f.Size(), name)
		if err != nil {
			return 0, nil // a boot image romforge cannot read holds nothing it can audit
		}
		for _, rd := range rds {
			t.trees[rd.Name] = rd.Tree
		}
		return len(rds), nil
	}
	s, err := lp.NewReader(f, f.Size())
	if err != nil {
		c.Close()
		return 0, nil
	}
	md, err := s.Metadata(0)
	if err != nil {
		c.Close()
		return 0, err
	}
	n := 0
	for _, p := range md.Partitions {
		pi, err := s.Partition(0, p.Name)
		if err != nil || pi.Size() == 0 {
			continue
		}
		if fsi, err := fsimage.OpenImage(pi); err == nil {
			t.trees[strings.TrimSuffix(strings.TrimSuffix(p.Name, "_a"), "_b")] = fsi
			n++
		}
	}
	if n == 0 {
		c.Close()
		return 0, nil
	}
	t.closers = append(t.closers, c.Close)
	return n, nil
}
