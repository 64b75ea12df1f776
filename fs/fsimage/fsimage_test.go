package fsimage

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/internal/validators"
)

// TestRebuildLikeSource patches the fixture images through an overlay and rebuilds them; the real
// checkers accept the result and the change is there with every other entry's metadata kept.
func TestRebuildLikeSource(t *testing.T) {
	fx := validators.Fixtures(t)
	for _, tc := range []struct{ file, checker string }{
		{"ext4/system.img", "e2fsck"},
		{"ext4/system.sparse.img", "e2fsck"},
		{"erofs/system.lz4hc.img", "fsck.erofs"},
	} {
		src, err := Open(filepath.Join(fx, tc.file))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		o := tree.NewOverlay(src)
		if err := o.Remove("app/XMSF"); err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		out := filepath.Join(t.TempDir(), "out.img")
		f, _ := os.Create(out)
		n, err := Rebuild(context.Background(), f, src, o, RebuildOptions{})
		f.Close()
		if err != nil {
			t.Fatalf("%s: rebuild: %v", tc.file, err)
		}
		if tc.checker == "e2fsck" {
			validators.Run(t, validators.Tool(t, "e2fsck"), "-fn", out)
		} else {
			validators.Run(t, validators.Tool(t, "fsck.erofs"), out)
		}
		got, err := Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if got.Kind != src.Kind || n <= 0 {
			t.Fatalf("%s: kind %s size %d", tc.file, got.Kind, n)
		}
		if _, err := got.Meta("app/XMSF"); err == nil {
			t.Fatalf("%s: removed app still there", tc.file)
		}
		want, _ := src.Meta("bin/netd_fake")
		have, err := got.Meta("bin/netd_fake")
		if err != nil || have.UID != want.UID || have.GID != want.GID || have.Mode != want.Mode || have.SELinux() != want.SELinux() || have.Capabilities() != want.Capabilities() {
			t.Fatalf("%s: netd_fake meta %+v vs %+v (%v)", tc.file, have, want, err)
		}
		a, _ := fs.ReadFile(src, "lib/libbig.so")
		b, _ := fs.ReadFile(got, "lib/libbig.so")
		if string(a) != string(b) || len(a) == 0 {
			t.Fatalf("%s: libbig.so differs", tc.file)
		}
		got.Close()
		src.Close()
	}
}
