package validators

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFixturesComplete(t *testing.T) {
	dir := Fixtures(t)
	for _, f := range []string{"ext4/system.img", "erofs/system.lz4hc.img", "sparse/pattern.sparse.img", "super/super.img", "payload/full/payload.bin", "avb/vbmeta.img", "boot/boot-v4.img"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("fixture %s missing: %v", f, err)
		}
	}
}
