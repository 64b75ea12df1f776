package doctor

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestRunOnFakeRoot(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("USB checks are Linux-only")
	}
	root := t.TempDir()
	cache := filepath.Join(t.TempDir(), "cache")
	cs := Run(Options{CacheDir: cache, Root: root, MinFreeBytes: 1})
	byName := map[string]Check{}
	for _, c := range cs {
		byName[c.Name] = c
	}
	if c := byName["usb access"]; c.OK || c.Fix == "" {
		t.Fatalf("missing /dev/bus/usb passed: %+v", c)
	}
	if c := byName["cache dir"]; !c.OK {
		t.Fatalf("cache dir: %+v", c)
	}
	if c := byName["free disk"]; !c.OK {
		t.Fatalf("free disk with 1-byte minimum: %+v", c)
	}
	if Problems(cs) < 1 {
		t.Fatal("no problems counted")
	}
	os.MkdirAll(filepath.Join(root, "dev/bus/usb/001"), 0o755)
	if c := checkUSB(root); !c.OK {
		t.Fatalf("usb with bus dir: %+v", c)
	}
	if c := checkDisk(cache, 1<<62); c.OK || c.Fix == "" {
		t.Fatalf("absurd minimum passed: %+v", c)
	}
	// A cache path under a file cannot be created.
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if c := checkCache(filepath.Join(f, "sub")); c.OK {
		t.Fatalf("cache under a file passed: %+v", c)
	}
}
