package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/internal/validators"
)

func TestFsCLI(t *testing.T) {
	fx := validators.Fixtures(t)
	img := filepath.Join(fx, "ext4/system.img")
	code, out, errs := runCLI(t, "fs", "ls", img, "/bin", "--json")
	if code != 0 {
		t.Fatalf("ls exit %d: %s", code, errs)
	}
	var list []fsEntry
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range list {
		if e.Path == "/bin/netd_fake" {
			found = e.Mode == "0750" && e.GID == 2000 && e.SELinux == "u:object_r:netd_exec:s0" && e.Capabilities == "0x3000"
		}
	}
	if !found {
		t.Fatalf("ls --json lacks a correct /bin/netd_fake: %s", out)
	}
	code, out, _ = runCLI(t, "fs", "ls", filepath.Join(fx, "ext4/system.sparse.img"), "-R")
	if code != 0 || !strings.Contains(out, "/bin/ls -> toybox") || !strings.Contains(out, "-rwxr-x---") {
		t.Fatalf("ls -R of the sparse image: %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "fs", "cat", img, "/build.prop")
	want, _ := os.ReadFile(filepath.Join(fx, "rom/system/build.prop"))
	if code != 0 || out != string(want) {
		t.Fatalf("cat build.prop: exit %d, %d bytes", code, len(out))
	}
	if code, _, _ = runCLI(t, "fs", "cat", img, "/nope"); code != 4 {
		t.Fatalf("cat of a missing file: exit %d, want 4", code)
	}
	dir := t.TempDir()
	ex := filepath.Join(dir, "system")
	if code, _, errs = runCLI(t, "fs", "extract", img, ex, "--mount-point", "/system"); code != 0 {
		t.Fatalf("extract exit %d: %s", code, errs)
	}
	cfg, _ := os.ReadFile(ex + ".fs_config")
	fc, _ := os.ReadFile(ex + ".file_contexts")
	if !strings.Contains(string(cfg), "system/bin/netd_fake 0 2000 0750 capabilities=0x3000") || !strings.Contains(string(fc), `/system/bin/netd_fake u:object_r:netd_exec:s0`) {
		t.Fatalf("fs_config:\n%s\nfile_contexts:\n%s", cfg, fc)
	}
	// Rebuild from the extracted dir with its fs_config and file_contexts, and from the image itself.
	out1 := filepath.Join(dir, "from-dir.img")
	code, _, errs = runCLI(t, "fs", "build", "--type", "ext4", "--shrink", "--margin", "1M", "--fs-config", ex+".fs_config",
		"--file-contexts", ex+".file_contexts", "--mount-point", "/system", "--timestamp", "1700000000", ex, out1)
	if code != 0 {
		t.Fatalf("build from dir exit %d: %s", code, errs)
	}
	out2 := filepath.Join(dir, "from-img.simg")
	code, out, errs = runCLI(t, "fs", "build", "--type", "ext4", "--size", "16M", "--journal", "--sparse", "--json", img, out2)
	if code != 0 || !strings.Contains(out, `"blocks_count": 4096`) {
		t.Fatalf("build from image exit %d: %s %s", code, out, errs)
	}
	for _, p := range []string{out1, out2} {
		code, out, _ = runCLI(t, "fs", "ls", p, "/bin/netd_fake", "--json")
		if code != 0 || !strings.Contains(out, `"selinux": "u:object_r:netd_exec:s0"`) || !strings.Contains(out, `"capabilities": "0x3000"`) || !strings.Contains(out, `"gid": 2000`) {
			t.Fatalf("%s: netd_fake lost metadata: %s", p, out)
		}
	}
	if validators.Have("e2fsck") {
		validators.Run(t, "e2fsck", "-fn", out1)
	}
	if code, _, _ = runCLI(t, "fs", "build", "--type", "ext4", ex, filepath.Join(dir, "x.img")); code != 2 {
		t.Fatalf("build without --size/--shrink: exit %d, want 2", code)
	}
	if code, _, _ = runCLI(t, "fs", "extract", img, ex); code != 3 {
		t.Fatalf("extract into a non-empty dir: exit %d, want 3", code)
	}
}

func TestFsExtractRefusesEscapes(t *testing.T) {
	// A file named like a path cannot come out of the ext4 reader; tree.Extract re-checks names anyway (fs/tree has the hostile-tree tests).
	if os.Geteuid() != 0 {
		t.Skip("needs root to make the image with mke2fs -d preserving owners")
	}
	validators.Tool(t, "mke2fs")
	src := t.TempDir()
	os.Symlink("/etc", filepath.Join(src, "evil"))
	img := filepath.Join(t.TempDir(), "x.img")
	validators.Run(t, "mke2fs", "-q", "-F", "-t", "ext4", "-d", src, img, "2M")
	ex := filepath.Join(t.TempDir(), "out")
	if code, _, errs := runCLI(t, "fs", "extract", img, ex); code != 0 {
		t.Fatalf("extract: %d %s", code, errs)
	}
	if tgt, err := os.Readlink(filepath.Join(ex, "evil")); err != nil || tgt != "/etc" {
		t.Fatalf("symlink not kept as a link: %q %v", tgt, err)
	}
}
