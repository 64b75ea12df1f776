package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/romforge/romforge/fs/fsimage"
	"github.com/romforge/romforge/fs/tree"
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
		tmp := out + ".tmp"
		f, err := os.Create(tmp)
		if err != nil {
			return err
		}
		n, err := fsimage.Rebuild(e.ctx, f, img, o, fsimage.RebuildOptions{Progress: e.reporter()})
		if err == nil {
			err = f.Truncate(n)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(tmp)
			return fmt.Errorf("patch: rebuilding %s: %w", img.Kind, err)
		}
		return os.Rename(tmp, out)
	}
	return t, nil
}
