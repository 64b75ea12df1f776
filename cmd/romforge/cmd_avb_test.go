package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/internal/validators"
)

func avbCopy(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	out.Close()
}

func TestVBMetaPatchCLI(t *testing.T) {
	fx := validators.Fixtures(t)
	tmp := t.TempDir()
	out := filepath.Join(tmp, "vbmeta.img")
	code, stdout, stderr := runCLI(t, "vbmeta", "patch", filepath.Join(fx, "avb", "vbmeta-unsigned.img"), out, "--disable-verity", "--disable-verification", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got, _ := os.ReadFile(out)
	want, _ := os.ReadFile(filepath.Join(fx, "avb", "vbmeta-disabled.img"))
	if !bytes.Equal(got, want) {
		t.Fatal("patched image differs from vbmeta-disabled.img (what fastboot sends)")
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res["flags_after"].(float64) != 3 {
		t.Fatalf("json %q: %v", stdout, err)
	}
	// signed image: only byte 123 changes, like the fastboot client
	out2 := filepath.Join(tmp, "signed.img")
	if code, _, stderr := runCLI(t, "vbmeta", "patch", filepath.Join(fx, "avb", "vbmeta.img"), out2, "--disable-verity"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	a, _ := os.ReadFile(filepath.Join(fx, "avb", "vbmeta.img"))
	b, _ := os.ReadFile(out2)
	var diff []int
	for i := range a {
		if a[i] != b[i] {
			diff = append(diff, i)
		}
	}
	if len(a) != len(b) || len(diff) != 1 || diff[0] != 123 || b[123] != 1 {
		t.Fatalf("signed patch changed bytes %v", diff)
	}
	if code, _, _ := runCLI(t, "vbmeta", "patch", filepath.Join(fx, "avb", "vbmeta.img"), out2); code != 2 {
		t.Fatalf("no flag: exit %d, want 2", code)
	}
	bad := filepath.Join(tmp, "bad.img")
	os.WriteFile(bad, []byte("this is not a vbmeta image at all, just text"), 0o644)
	if code, _, _ := runCLI(t, "vbmeta", "patch", bad, out2, "--disable-verity"); code != 4 {
		t.Fatalf("garbage: exit %d, want 4", code)
	}
}

// vbmeta sign reproduces avbtool's fixture and the result verifies with avbtool and with us.
func TestVBMetaSignAndVerifyCLI(t *testing.T) {
	fx := validators.Fixtures(t)
	tmp := t.TempDir()
	for _, n := range []string{"boot.img", "system.img", "vbmeta_system.img"} {
		avbCopy(t, filepath.Join(fx, "avb", n), filepath.Join(tmp, n))
	}
	out := filepath.Join(tmp, "vbmeta.img")
	pk2 := filepath.Join(fx, "avb", "testkey_rsa2048.avbpubkey")
	code, _, stderr := runCLI(t, "vbmeta", "sign", "--key", filepath.Join(fx, "keys", "testkey_rsa4096.pem"),
		"--algorithm", "SHA256_RSA4096", "--rollback-index", "3", "--include-descriptors-from-image", filepath.Join(tmp, "boot.img"),
		"--chain-partition", "vbmeta_system:1:"+pk2, "-o", out)
	if code != 0 {
		t.Fatalf("sign exit %d: %s", code, stderr)
	}
	got, _ := os.ReadFile(out)
	want, _ := os.ReadFile(filepath.Join(fx, "avb", "vbmeta.img"))
	if !bytes.Equal(got, want) {
		t.Fatal("vbmeta sign differs from avbtool make_vbmeta_image with the same inputs")
	}
	if validators.Have("avbtool") {
		validators.Run(t, "avbtool", "verify_image", "--image", out, "--key", filepath.Join(fx, "keys", "testkey_rsa4096.pem"),
			"--expected_chain_partition", "vbmeta_system:1:"+pk2)
	}
	code, stdout, stderr := runCLI(t, "avb", "verify", out, "--key", filepath.Join(fx, "keys", "testkey_rsa4096.pem"),
		"--expected-chain-partition", "vbmeta_system:1:"+pk2, "--json")
	if code != 0 {
		t.Fatalf("verify exit %d: %s %s", code, stdout, stderr)
	}
	var rep struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Partition, What string
			OK              bool
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || !rep.OK || len(rep.Checks) < 5 {
		t.Fatalf("verify JSON %q: %v", stdout, err)
	}
	// wrong key → findings (exit 1)
	if code, _, _ := runCLI(t, "avb", "verify", out, "--key", filepath.Join(fx, "keys", "testkey_rsa2048.pem")); code != 1 {
		t.Fatalf("wrong key: exit %d, want 1", code)
	}
	// tampered system → findings (through the chained vbmeta_system)
	f, _ := os.OpenFile(filepath.Join(tmp, "system.img"), os.O_RDWR, 0)
	f.WriteAt([]byte("X"), 4096*10)
	f.Close()
	if code, stdout, _ := runCLI(t, "avb", "verify", out); code != 1 || !strings.Contains(stdout, "FAILED") {
		t.Fatalf("tampered: exit %d\n%s", code, stdout)
	}
	// corrupt vbmeta → exit 4
	os.WriteFile(filepath.Join(tmp, "corrupt.img"), append([]byte("AVB0"), make([]byte, 300)...), 0o644)
	if code, _, _ := runCLI(t, "avb", "verify", filepath.Join(tmp, "corrupt.img")); code != 4 {
		t.Fatalf("corrupt: exit %d, want 4", code)
	}
	// inspect shows it
	code, stdout, _ = runCLI(t, "inspect", out, "--json")
	var ins struct {
		Format  string `json:"format"`
		Details struct {
			Algorithm   string `json:"algorithm"`
			Descriptors []struct {
				Type string `json:"type"`
			} `json:"descriptors"`
		} `json:"details"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &ins) != nil || ins.Format != "vbmeta" || ins.Details.Algorithm != "SHA256_RSA4096" ||
		len(ins.Details.Descriptors) != 2 || ins.Details.Descriptors[0].Type != "chain_partition" {
		t.Fatalf("inspect: %d %s", code, stdout)
	}
}

func TestAVBFooterCLI(t *testing.T) {
	fx := validators.Fixtures(t)
	tmp := t.TempDir()
	sys := filepath.Join(tmp, "system.img")
	avbCopy(t, filepath.Join(fx, "ext4", "system.img"), sys)
	code, stdout, stderr := runCLI(t, "avb", "add-hashtree-footer", sys, "--partition-name", "system", "--partition-size", "20M",
		"--salt", "7323f798356a105fd7f7740d95f38c55dbfd21ec885a496aa3f6e9b59aa8fb65", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got, _ := os.ReadFile(sys)
	want, _ := os.ReadFile(filepath.Join(fx, "avb", "system.img"))
	if !bytes.Equal(got, want) {
		t.Fatal("add-hashtree-footer differs from avbtool's avb/system.img")
	}
	var res map[string]any
	if json.Unmarshal([]byte(stdout), &res) != nil || res["root_digest"] != "ee12ef66458390e223ce07c8190a62fa445932a7e6dd29f143f5f7868010c45c" {
		t.Fatalf("json: %s", stdout)
	}
	boot := filepath.Join(tmp, "boot.img")
	avbCopy(t, filepath.Join(fx, "boot", "boot-v2.img"), boot)
	code, _, stderr = runCLI(t, "avb", "add-hash-footer", boot, "--partition-name", "boot", "--partition-size", "16777216",
		"--key", filepath.Join(fx, "keys", "testkey_rsa2048.pem"), "--rollback-index", "5")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if validators.Have("avbtool") {
		out := validators.Run(t, "avbtool", "verify_image", "--image", boot, "--key", filepath.Join(fx, "keys", "testkey_rsa2048.pem"))
		if !strings.Contains(out, "Successfully verified sha256 hash") {
			t.Fatal(out)
		}
	}
	code, stdout, _ = runCLI(t, "avb", "verify", boot, "--json")
	if code != 0 || !strings.Contains(stdout, `"ok": true`) {
		t.Fatalf("our verify of the signed boot: %d %s", code, stdout)
	}
	code, stdout, _ = runCLI(t, "inspect", sys, "--json")
	if code != 0 || !strings.Contains(stdout, `"format": "avb-footer"`) || !strings.Contains(stdout, `"original_image_size": 16777216`) {
		t.Fatalf("inspect footer: %d %s", code, stdout)
	}
	if code, _, _ := runCLI(t, "avb", "add-hash-footer", boot, "--partition-name", "boot", "--partition-size", "64K"); code != 4 {
		t.Fatalf("too small partition: exit %d, want 4", code)
	}
	pub := filepath.Join(tmp, "k.avbpubkey")
	if code, _, stderr := runCLI(t, "avb", "extract-public-key", filepath.Join(fx, "keys", "testkey_rsa4096.pem"), "-o", pub); code != 0 {
		t.Fatalf("extract: %s", stderr)
	}
	a, _ := os.ReadFile(pub)
	b, _ := os.ReadFile(filepath.Join(fx, "avb", "testkey_rsa4096.avbpubkey"))
	if !bytes.Equal(a, b) {
		t.Fatal("extract-public-key differs from avbtool's")
	}
}
