package doctor

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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

func TestUsbfsMemory(t *testing.T) {
	root := t.TempDir()
	if c := checkUsbfsMemory(root); !c.OK || !c.Optional {
		t.Fatalf("missing parameter file: %+v", c)
	}
	p := filepath.Join(root, "sys/module/usbcore/parameters/usbfs_memory_mb")
	os.MkdirAll(filepath.Dir(p), 0o755)
	for _, tc := range []struct {
		val string
		ok  bool
	}{{"16\n", true}, {"0\n", true}, {"1024\n", true}, {"4\n", false}, {"x\n", false}, {"-3\n", false}} {
		os.WriteFile(p, []byte(tc.val), 0o644)
		c := checkUsbfsMemory(root)
		if c.OK != tc.ok || (!c.OK && !strings.Contains(c.Fix, "usbfs_memory_mb")) {
			t.Errorf("%q: %+v", tc.val, c)
		}
	}
}

func TestUsbGuidance(t *testing.T) {
	none := func(string) (string, error) { return "", errors.New("not found") }
	have := func(string) (string, error) { return "/opt/platform-tools/fastboot", nil }
	if c := usbGuidance("windows", none); !c.OK || !strings.Contains(c.Detail, "WinUSB") {
		t.Errorf("windows without fastboot (native WinUSB): %+v", c)
	}
	if c := usbGuidance("darwin", none); c.OK || c.Fix == "" {
		t.Errorf("darwin without fastboot: %+v", c)
	}
	if c := usbGuidance("windows", have); !c.OK || !strings.Contains(c.Detail, "Google USB Driver") {
		t.Errorf("windows with fastboot: %+v", c)
	}
	if c := usbGuidance("darwin", have); !c.OK || !strings.Contains(c.Detail, "/opt/platform-tools/fastboot") {
		t.Errorf("darwin: %+v", c)
	}
}
