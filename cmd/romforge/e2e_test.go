package main

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/demo/sample"
	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash/emulator"
	"github.com/romforge/romforge/flash/fastboot"
	"github.com/romforge/romforge/fs/fsimage"
	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/internal/validators"
	"github.com/romforge/romforge/patches"
	"github.com/romforge/romforge/patches/audit"
)

// startEmulator serves a virtual phone on a loopback port and returns its serial (tcp:ADDR).
func startEmulator(t *testing.T, codename string, opt emulator.Options) (*emulator.Device, string) {
	t.Helper()
	cat, _ := devices.Builtin()
	d, err := cat.Lookup(codename)
	if err != nil {
		t.Fatal(err)
	}
	return startEmulatorFor(t, d, opt)
}

// startEmulatorFor serves a virtual phone of a given (possibly altered) catalog device.
func startEmulatorFor(t *testing.T, d *devices.Device, opt emulator.Options) (*emulator.Device, string) {
	t.Helper()
	if opt.StateDir == "" {
		opt.StateDir = t.TempDir()
	}
	em, err := emulator.New(d, opt)
	if err != nil {
		t.Fatal(err)
	}
	l, err := fastboot.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go em.ServeListener(ctx, l)
	t.Cleanup(func() { cancel(); l.Close() })
	return em, "tcp:" + l.Addr().String()
}

func sampleBundle(t *testing.T) string {
	t.Helper()
	rom := filepath.Join(t.TempDir(), "lineage-14.1-armani.zip")
	f, _ := os.Create(rom)
	if err := sample.ArmaniROM(context.Background(), f, sample.Options{SystemSize: 24 << 20}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(t.TempDir(), "bundle")
	code, stdout, stderr := runCLI(t, "build", "--device", "armani", "--input", rom, "-o", out)
	if code != 0 || !strings.Contains(stdout, "audit: ") {
		t.Fatalf("build: exit %d\n%s\n%s", code, stdout, stderr)
	}
	return out
}

// TestBuildFlashReadBack is the whole job: build a bundle from a sample armani ROM, flash it to the
// emulator over TCP, read the flashed system image back from the virtual device and audit it.
func TestBuildFlashReadBack(t *testing.T) {
	out := sampleBundle(t)
	em, serial := startEmulator(t, "armani", emulator.Options{})
	code, stdout, stderr := runCLI(t, "flash", out, "--serial", serial, "--yes")
	if code != 0 {
		t.Fatalf("flash: exit %d\n%s\n%s", code, stdout, stderr)
	}
	mountPatched(t, em.PartitionPath("system"))
	img, err := fsimage.Open(em.PartitionPath("system"))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if _, err := img.Meta("app/XMSF"); err == nil {
		t.Fatal("flashed system still has XMSF")
	}
	hosts, _ := fs.ReadFile(img, "etc/hosts")
	if !strings.Contains(string(hosts), "0.0.0.0 api.xmpush.xiaomi.com") {
		t.Fatalf("flashed hosts:\n%s", hosts)
	}
	set, _ := patches.Load("xiaomi-hardened")
	res, err := audit.Scan(context.Background(), map[string]tree.Tree{"system": img}, audit.RulesFrom(set), audit.Options{})
	if err != nil || !res.Clean() {
		t.Fatalf("flashed system audits dirty: %v %v", res.Findings, err)
	}
}

// TestFlashRefusalsWriteNothing: a locked phone and the wrong phone are refused (exit 3) and the
// emulator's write counter stays at zero; --dry-run writes nothing either.
func TestFlashRefusalsWriteNothing(t *testing.T) {
	out := sampleBundle(t)
	locked, s1 := startEmulator(t, "armani", emulator.Options{Locked: true})
	if code, _, stderr := runCLI(t, "flash", out, "--serial", s1, "--yes"); code != exitRefused || !strings.Contains(stderr, "locked") {
		t.Fatalf("locked: exit %d %s", code, stderr)
	}
	other, s2 := startEmulator(t, "lavender", emulator.Options{})
	if code, _, stderr := runCLI(t, "flash", out, "--serial", s2, "--yes"); code != exitRefused || !strings.Contains(stderr, "wrong phone") {
		t.Fatalf("wrong phone: exit %d %s", code, stderr)
	}
	dry, s3 := startEmulator(t, "armani", emulator.Options{})
	code, stdout, _ := runCLI(t, "flash", out, "--serial", s3, "--dry-run")
	if code != 0 || !strings.Contains(stdout, "fastboot flash system system.img") || !strings.Contains(stdout, "nothing was written") {
		t.Fatalf("dry run: exit %d\n%s", code, stdout)
	}
	for name, em := range map[string]*emulator.Device{"locked": locked, "other": other, "dry": dry} {
		if em.Writes() != 0 {
			t.Errorf("%s: %d bytes written", name, em.Writes())
		}
	}
	// Without --yes and without a terminal, nothing is flashed either.
	if code, _, _ := runCLI(t, "flash", out, "--serial", s3); code != exitRefused || dry.Writes() != 0 {
		t.Fatalf("unconfirmed: exit %d, %d bytes", code, dry.Writes())
	}
}

// TestFlashShWithAOSPClient runs the bundle's flash.sh with the real AOSP fastboot client against the
// emulator.
func TestFlashShWithAOSPClient(t *testing.T) {
	fb, err := exec.LookPath("fastboot")
	if err != nil {
		t.Skip("AOSP fastboot client not installed (scripts/install-validators.sh)")
	}
	out := sampleBundle(t)
	em, serial := startEmulator(t, "armani", emulator.Options{})
	cmd := exec.Command("sh", filepath.Join(out, "flash.sh"), "-s", serial)
	cmd.Env = append(os.Environ(), "FASTBOOT="+fb)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("flash.sh: %v\n%s", err, b)
	}
	want, _ := os.ReadFile(filepath.Join(out, "images/system.img"))
	got, _ := os.ReadFile(em.PartitionPath("system"))
	if len(got) < len(want) || string(got[:len(want)]) != string(want) {
		t.Fatalf("system partition after flash.sh differs (%d vs %d bytes)", len(got), len(want))
	}
}

// TestFlashXiaomiROM flashes the Xiaomi-style fastboot ROM fixture (its flash_all.sh parsed, never run) to
// the emulator: erases and flashes in the script's order, and the images land byte for byte.
func TestFlashXiaomiROM(t *testing.T) {
	fx := validators.Fixtures(t)
	roms, _ := filepath.Glob(filepath.Join(fx, "fastboot", "armani_images_*.tgz"))
	em, serial := startEmulator(t, "armani", emulator.Options{})
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	code, stdout, stderr := runCLI(t, "flash", roms[0], "--serial", serial, "--yes")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	// The images as the flash extracted them (the tgz is read, never executed).
	dir, err := unpackFolder(filepath.Join(cache, "romforge"), roms[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"boot", "system", "recovery"} {
		img, c, err := sparse.Open(filepath.Join(dir, "images", p+".img"))
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, img.Size())
		img.ReadAt(want, 0)
		c.Close()
		got, _ := os.ReadFile(em.PartitionPath(p))
		if len(got) < len(want) || string(got[:len(want)]) != string(want) {
			t.Errorf("%s differs after flashing", p)
		}
	}
}

// TestFlashAll flashes two emulated phones at once; a third, locked one is refused (exit 3, nothing
// written) without stopping the others, and each device gets its own log.
func TestFlashAll(t *testing.T) {
	out := sampleBundle(t)
	em1, s1 := startEmulator(t, "armani", emulator.Options{})
	em2, s2 := startEmulator(t, "armani", emulator.Options{})
	em3, s3 := startEmulator(t, "armani", emulator.Options{Locked: true})
	saved := listDevices
	listDevices = func(context.Context) ([]string, error) { return []string{s1, s2, s3}, nil }
	defer func() { listDevices = saved }()
	logs := t.TempDir()
	code, stdout, stderr := runCLI(t, "flash", out, "--all", "--yes", "--log-dir", logs, "--json")
	if code != exitRefused || !strings.Contains(stdout, `"refused": 1`) || !strings.Contains(stdout, `"ok": 2`) {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if em1.Writes() == 0 || em2.Writes() == 0 || em3.Writes() != 0 {
		t.Fatalf("writes: %d %d %d", em1.Writes(), em2.Writes(), em3.Writes())
	}
	files, _ := filepath.Glob(filepath.Join(logs, "*.log"))
	if len(files) != 3 {
		t.Fatalf("logs: %v", files)
	}
	b, _ := os.ReadFile(filepath.Join(logs, sanitize(s3)+".log"))
	if !strings.Contains(string(b), "locked") {
		t.Fatalf("locked device's log:\n%s", b)
	}
}

// TestFlashResumeAfterCut: the connection drops in the middle of the system image; the command fails
// with an I/O error naming --resume, and `flash --resume` finishes from the journal without redoing
// boot. The partition then holds exactly the image.
func TestFlashResumeAfterCut(t *testing.T) {
	out := sampleBundle(t)
	em, serial := startEmulator(t, "armani", emulator.Options{MaxDownloadSize: 1 << 20})
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	for _, cut := range []int64{20000, 150001} {
		em.SetFault(emulator.Fault{DropAfter: cut})
		code, _, stderr := runCLI(t, "flash", out, "--serial", serial, "--yes")
		if code != exitIO || !strings.Contains(stderr, "--resume") {
			t.Fatalf("cut at %d: exit %d %s", cut, code, stderr)
		}
		em.SetFault(emulator.Fault{})
		code, _, stderr = runCLI(t, "flash", out, "--serial", serial, "--yes", "--resume")
		if code != 0 {
			t.Fatalf("resume after cut at %d: exit %d %s", cut, code, stderr)
		}
		want, _ := os.ReadFile(filepath.Join(out, "images/system.img"))
		got, _ := os.ReadFile(em.PartitionPath("system"))
		if len(got) < len(want) || !bytes.Equal(got[:len(want)], want) {
			t.Fatalf("cut at %d: system differs after resume", cut)
		}
	}
}
