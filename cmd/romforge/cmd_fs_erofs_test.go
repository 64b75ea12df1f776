package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/internal/validators"
)

// TestFsEROFS builds an EROFS image from the fixture tree, checks it with fsck.erofs, lists it, extracts
// it and reads an mkfs.erofs image.
func TestFsEROFS(t *testing.T) {
	fx := validators.Fixtures(t)
	out := filepath.Join(t.TempDir(), "system.img")
	if code, _, stderr := runCLI(t, "fs", "build", "--type", "erofs", "--compress", "lz4hc", "--mount-point", "/system", filepath.Join(fx, "rom/system"), out); code != 0 {
		t.Fatalf("fs build: exit %d %s", code, stderr)
	}
	validators.Run(t, validators.Tool(t, "fsck.erofs"), out)
	code, stdout, _ := runCLI(t, "fs", "ls", out, "/bin", "--json")
	if code != 0 || !strings.Contains(stdout, `"selinux": "u:object_r:netd_exec:s0"`) {
		t.Fatalf("fs ls: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runCLI(t, "fs", "cat", filepath.Join(fx, "erofs/system.lz4hc.img"), "/build.prop")
	if code != 0 || !strings.Contains(stdout, "ro.product.device=armani") {
		t.Fatalf("fs cat: exit %d", code)
	}
	dir := filepath.Join(t.TempDir(), "x")
	if code, _, stderr := runCLI(t, "fs", "extract", out, dir); code != 0 {
		t.Fatalf("fs extract: exit %d %s", code, stderr)
	}
	cfg, _ := os.ReadFile(dir + ".fs_config")
	if !strings.Contains(string(cfg), "bin/netd_fake 0 2000 0750 capabilities=0x3000") {
		t.Fatalf("fs_config:\n%s", cfg)
	}
	if code, _, _ := runCLI(t, "fs", "build", "--type", "erofs", "--compress", "zstd", filepath.Join(fx, "rom/system"), out+"2"); code != exitUsage {
		t.Fatalf("bad --compress: exit %d", code)
	}
}
