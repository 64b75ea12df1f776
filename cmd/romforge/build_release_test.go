package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/demo/sample"
)

// TestBuildReleaseFallsBack: build --release tries the device's sources in order like fetch: the first
// (a repository the server does not know) fails, the second serves the ROM, and the bundle is built.
func TestBuildReleaseFallsBack(t *testing.T) {
	var rom bytes.Buffer
	if err := sample.ArmaniROM(context.Background(), &rom, sample.Options{SystemSize: 24 << 20}); err != nil {
		t.Fatal(err)
	}
	body := rom.Bytes()
	sum := sha256.Sum256(body)
	srv := fakeReleases(t, body, hex.EncodeToString(sum[:])+"  lineage-14.1-20231114-UNOFFICIAL-armani.zip\n")
	cfg := t.TempDir()
	os.MkdirAll(filepath.Join(cfg, "romforge", "devices"), 0o755)
	os.WriteFile(filepath.Join(cfg, "romforge", "devices", "armani.yaml"), []byte(`codename: armani
sources:
  - {name: gone, kind: github, repo: nobody/no-such-repo, asset: '\.zip$', checksum: sidecar, family: lineageos}
  - {name: mirror, kind: github, repo: armani-dev/android_releases, asset: '\.zip$', checksum: sidecar, family: lineageos}
`), 0o644)
	t.Setenv("XDG_CONFIG_HOME", cfg)
	out := filepath.Join(t.TempDir(), "bundle")
	code, stdout, stderr := runCLI(t, "build", "--device", "armani", "--release", "--github-api", srv.URL,
		"--cache-dir", t.TempDir(), "-o", out)
	if code != 0 {
		t.Fatalf("build --release: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "source gone did not serve a build") {
		t.Errorf("no warning about the failed source:\n%s", stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "manifest.json")); err != nil {
		t.Fatal(err)
	}
}
