package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/romforge/romforge/internal/failure"
)

// TestForceReplacesOnlyAfterSuccess: a non-empty -o is refused without Force; with Force a failed build
// keeps the old bundle untouched and a good one replaces it.
func TestForceReplacesOnlyAfterSuccess(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bundle")
	os.MkdirAll(out, 0o755)
	marker := filepath.Join(out, "old-bundle.txt")
	os.WriteFile(marker, []byte("old"), 0o644)
	rom := armaniROM(t, "armani")

	_, err := Run(context.Background(), Options{Device: device(t, "armani"), Input: rom, Sets: hardened(t), Out: out})
	if !errors.Is(err, failure.ErrUsage) {
		t.Fatalf("non-empty -o without Force: %v", err)
	}
	junk := filepath.Join(t.TempDir(), "junk.bin")
	os.WriteFile(junk, []byte("not a rom"), 0o644)
	if _, err := Run(context.Background(), Options{Device: device(t, "armani"), Input: junk, Sets: hardened(t), Out: out, Force: true}); err == nil {
		t.Fatal("junk input built")
	}
	if b, err := os.ReadFile(marker); err != nil || string(b) != "old" {
		t.Fatalf("a failed --force build touched the old bundle: %q %v", b, err)
	}
	if _, err := Run(context.Background(), Options{Device: device(t, "armani"), Input: rom, Sets: hardened(t), Out: out, Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("the old bundle's files survived --force")
	}
	if _, err := os.Stat(filepath.Join(out, "manifest.json")); err != nil {
		t.Fatalf("no new bundle: %v", err)
	}
	if m, _ := filepath.Glob(out + "*"); len(m) != 1 {
		t.Fatalf("temporary or moved-aside folders left beside the bundle: %v", m)
	}
}
