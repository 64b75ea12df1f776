package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/romforge/romforge/internal/validators"
)

func TestBootCLIRoundTrip(t *testing.T) {
	fx := validators.Fixtures(t)
	for _, name := range []string{"boot/boot-v0-dt.img", "boot/boot-v2.img", "boot/vendor_boot-v4.img", "avb/boot.img"} {
		in := filepath.Join(fx, name)
		dir := filepath.Join(t.TempDir(), "parts")
		code, stdout, stderr := runCLI(t, "boot", "unpack", in, "-o", dir, "--json")
		if code != 0 {
			t.Fatalf("%s: unpack exit %d: %s", name, code, stderr)
		}
		var res struct {
			Files  []string `json:"files"`
			Format string   `json:"format"`
		}
		if err := json.Unmarshal([]byte(stdout), &res); err != nil || len(res.Files) < 3 {
			t.Fatalf("%s: unpack JSON %q: %v", name, stdout, err)
		}
		out := filepath.Join(t.TempDir(), "re.img")
		if code, _, stderr := runCLI(t, "boot", "repack", dir, "-o", out); code != 0 {
			t.Fatalf("%s: repack exit %d: %s", name, code, stderr)
		}
		want, _ := os.ReadFile(in)
		got, _ := os.ReadFile(out)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: unpack → repack is not byte-identical (%d vs %d bytes)", name, len(got), len(want))
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".re.img.tmp-*")); len(left) > 0 {
			t.Fatalf("temporary files left: %v", left)
		}
	}
}

func TestBootCLICorrupt(t *testing.T) {
	fx := validators.Fixtures(t)
	b, _ := os.ReadFile(filepath.Join(fx, "boot/boot-v2.img"))
	bad := filepath.Join(t.TempDir(), "bad.img")
	os.WriteFile(bad, b[:len(b)/3], 0o644)
	if code, _, stderr := runCLI(t, "boot", "unpack", bad, "-o", t.TempDir()); code != 4 {
		t.Fatalf("truncated image: exit %d, want 4 (%s)", code, stderr)
	}
	if code, _, _ := runCLI(t, "inspect", bad); code != 4 {
		t.Fatalf("inspect of a truncated boot image: exit %d, want 4", code)
	}
	empty := t.TempDir()
	out := filepath.Join(t.TempDir(), "x.img")
	if code, _, _ := runCLI(t, "boot", "repack", empty, "-o", out); code != 4 {
		t.Fatalf("repack of a directory without header.json: exit %d, want 4", code)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a failed repack left an output file")
	}
	if code, _, _ := runCLI(t, "boot", "unpack", bad); code != 2 {
		t.Fatalf("unpack without -o: exit %d, want 2", code)
	}
}

func TestBootInspect(t *testing.T) {
	fx := validators.Fixtures(t)
	code, stdout, stderr := runCLI(t, "inspect", filepath.Join(fx, "boot/vendor_boot-v4.img"), "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res struct {
		Format  string `json:"format"`
		Details struct {
			Header map[string]any `json:"header"`
		} `json:"details"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	h := res.Details.Header
	if res.Format != "boot" || h["header_version"] != 4.0 || h["format"] != "vendor_boot" || h["cmdline"] != "androidboot.selinux=permissive" || h["page_size"] != 4096.0 {
		t.Fatalf("inspect JSON: %s", stdout)
	}
}
