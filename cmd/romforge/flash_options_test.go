package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/devices"
)

// TestFlashScriptOnBundleIsUsage: --script names a Xiaomi ROM's script; given with a bundle it is a usage
// error, not silently ignored.
func TestFlashScriptOnBundleIsUsage(t *testing.T) {
	out := sampleBundle(t)
	code, stdout, stderr := runCLI(t, "flash", out, "--script", "all", "--dry-run", "--serial", "tcp:127.0.0.1:1")
	if code != 2 || !strings.Contains(stdout+stderr, "--script") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestDryRunWithoutPhoneShowsNotes: a dry run that reaches no phone still says what the plan leaves out
// (here: a ROM without an except-storage script, whose wipe steps are dropped).
func TestDryRunWithoutPhoneShowsNotes(t *testing.T) {
	cat, _ := devices.Builtin()
	d, err := cat.Lookup("spes")
	if err != nil {
		t.Fatal(err)
	}
	rom := writeStockROM(t, d, 7, 1)
	for _, ext := range []string{".sh", ".bat"} {
		os.Remove(filepath.Join(rom.Root, "flash_all_except_storage"+ext))
	}
	code, stdout, stderr := runCLI(t, "flash", rom.Root, "--dry-run", "--serial", "tcp:127.0.0.1:1")
	if code != 0 || !strings.Contains(stdout, "note: ") || !strings.Contains(stdout, "userdata") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
}
