package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/romforge/romforge/internal/validators"
)

// TestUnpackContainers: super (raw and sparse) unpacks to what lpunpack writes, a Xiaomi fastboot tgz to
// its images, a sparse image to what simg2img writes.
func TestUnpackContainers(t *testing.T) {
	fx := validators.Fixtures(t)
	lpunpack := validators.Tool(t, "lpunpack")
	ref := t.TempDir()
	validators.Run(t, lpunpack, filepath.Join(fx, "super/super.img"), ref)
	for _, in := range []string{"super/super.img", "super/super.sparse.img"} {
		out := t.TempDir()
		if code, _, stderr := runCLI(t, "unpack", filepath.Join(fx, in), "-o", out); code != 0 {
			t.Fatalf("%s: exit %d %s", in, code, stderr)
		}
		for _, p := range []string{"system.img", "vendor.img"} {
			a, _ := os.ReadFile(filepath.Join(ref, p))
			b, _ := os.ReadFile(filepath.Join(out, p))
			if len(a) == 0 || !bytes.Equal(a, b) {
				t.Errorf("%s: %s differs from lpunpack's", in, p)
			}
		}
		if _, err := os.Stat(filepath.Join(out, "unpack.json")); err != nil {
			t.Errorf("%s: no unpack.json", in)
		}
	}
	out := t.TempDir()
	if code, _, stderr := runCLI(t, "unpack", filepath.Join(fx, "ext4/system.sparse.img"), "-o", out, "--json"); code != 0 {
		t.Fatalf("sparse: exit %d %s", code, stderr)
	}
	raw := filepath.Join(t.TempDir(), "raw.img")
	validators.Run(t, validators.Tool(t, "simg2img"), filepath.Join(fx, "ext4/system.sparse.img"), raw)
	a, _ := os.ReadFile(raw)
	b, _ := os.ReadFile(filepath.Join(out, "system.img"))
	if !bytes.Equal(a, b) {
		t.Error("sparse unpack differs from simg2img")
	}
	tgzs, _ := filepath.Glob(filepath.Join(fx, "fastboot/armani_images_*.tgz"))
	out = t.TempDir()
	if code, _, stderr := runCLI(t, "unpack", tgzs[0], "-o", out, "--partitions", "system"); code != 0 {
		t.Fatalf("xiaomi: exit %d %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "boot.img")); err == nil {
		t.Error("--partitions system also wrote boot")
	}
	b, _ = os.ReadFile(filepath.Join(out, "system.img"))
	orig, _ := os.ReadFile(filepath.Join(fx, "ext4/system.img"))
	if !bytes.Equal(orig, b) {
		t.Error("system from the Xiaomi ROM differs from the fixture image")
	}
}
