package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/internal/validators"
)

func TestUnpackOTAZip(t *testing.T) {
	fx := validators.Fixtures(t)
	dir := t.TempDir()
	code, stdout, stderr := runCLI(t, "unpack", filepath.Join(fx, "payload/ota-full.zip"), "-o", dir, "--json", "--workers", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout, stderr)
	}
	var res struct {
		SourceFormat string            `json:"source_format"`
		Metadata     map[string]string `json:"metadata"`
		Partitions   []struct {
			Name   string `json:"name"`
			File   string `json:"file"`
			SHA256 string `json:"sha256"`
			FSType string `json:"fs_type"`
			Size   int64  `json:"size"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("stdout %q: %v", stdout, err)
	}
	disk, err := os.ReadFile(filepath.Join(dir, "unpack.json"))
	if err != nil || !json.Valid(disk) {
		t.Fatalf("unpack.json: %v", err)
	}
	if res.SourceFormat != "ab-ota-zip" || res.Metadata["post-timestamp"] != "1700000000" || res.Metadata["pre-device"] != "armani" {
		t.Fatalf("result %+v", res)
	}
	want := map[string][2]string{"boot": {"boot/boot-v4.img", "boot"}, "system": {"ext4/system.img", "ext4"}, "vendor": {"erofs/vendor.img", "erofs"}}
	if len(res.Partitions) != 3 {
		t.Fatalf("partitions %+v", res.Partitions)
	}
	for _, p := range res.Partitions {
		w := want[p.Name]
		a, _ := os.ReadFile(filepath.Join(dir, p.Name+".img"))
		b, _ := os.ReadFile(filepath.Join(fx, w[0]))
		if !bytes.Equal(a, b) || p.FSType != w[1] || p.Size != int64(len(b)) || len(p.SHA256) != 64 {
			t.Fatalf("%s: fs %s size %d equal %v", p.Name, p.FSType, p.Size, bytes.Equal(a, b))
		}
	}
}

func TestUnpackPartitionsAndErrors(t *testing.T) {
	fx := validators.Fixtures(t)
	in := filepath.Join(fx, "payload/full/payload.bin")
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, "unpack", in, "-o", dir, "--partitions", "vendor"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 { // vendor.img + unpack.json
		t.Fatalf("wrote %v", ents)
	}
	if code, _, _ := runCLI(t, "unpack", in, "-o", t.TempDir(), "--partitions", "nosuch"); code != 2 {
		t.Fatalf("unknown partition: exit %d, want 2", code)
	}
	// A corrupt payload exits 4 and leaves no image behind.
	raw, _ := os.ReadFile(in)
	raw[len(raw)-5000] ^= 0xFF
	bad := filepath.Join(t.TempDir(), "payload.bin")
	os.WriteFile(bad, raw, 0o644)
	out := t.TempDir()
	code, stdout, _ := runCLI(t, "unpack", bad, "-o", out, "--json")
	if code != 4 || !strings.Contains(stdout, "operation") {
		t.Fatalf("corrupt: exit %d, %s", code, stdout)
	}
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".img") || strings.Contains(e.Name(), "tmp") {
			if e.Name() == "boot.img" || e.Name() == "system.img" { // partitions before the damage are complete
				continue
			}
			t.Fatalf("left %s behind", e.Name())
		}
	}
	if code, _, _ := runCLI(t, "unpack", filepath.Join(fx, "ext4/system.img"), "-o", t.TempDir()); code != 4 {
		t.Fatalf("not a container: exit %d, want 4", code)
	}
}

func TestUnpackDelta(t *testing.T) {
	fx := validators.Fixtures(t)
	old := t.TempDir()
	os.Symlink(filepath.Join(fx, "boot/boot-v4.img"), filepath.Join(old, "boot.img"))
	os.Symlink(filepath.Join(fx, "ext4/system.img"), filepath.Join(old, "system.img"))
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, "unpack", filepath.Join(fx, "payload/delta/payload.bin"), "-o", dir, "--old", old); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "system.img"))
	b, _ := os.ReadFile(filepath.Join(fx, "ext4/system-v2.img"))
	if !bytes.Equal(a, b) {
		t.Fatal("delta system.img differs from system-v2.img")
	}
}
