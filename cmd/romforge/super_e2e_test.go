package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/bundle"
	"github.com/romforge/romforge/demo/sample"
	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash/emulator"
	"github.com/romforge/romforge/flash/fastboot"
)

// aliothBundle builds the sample A/B dynamic ROM into a bundle with a super image.
func aliothBundle(t *testing.T) (string, *bundle.Manifest) {
	t.Helper()
	rom := filepath.Join(t.TempDir(), "lineage-21.0-alioth.zip")
	f, _ := os.Create(rom)
	if err := sample.ABROM(context.Background(), f, "alioth"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(t.TempDir(), "bundle")
	if code, stdout, stderr := runCLI(t, "build", "--device", "alioth", "--input", rom, "-o", out); code != 0 {
		t.Fatalf("build: exit %d\n%s\n%s", code, stdout, stderr)
	}
	m, err := bundle.Read(out)
	if err != nil || m.Super == nil {
		t.Fatalf("manifest: %v, super %+v", err, m)
	}
	return out, m
}

// onSlotB switches the emulated phone to slot b, so a flash that ignored the super's slot would show.
func onSlotB(t *testing.T, serial string) {
	t.Helper()
	tr, err := fastboot.Dial(context.Background(), serial)
	if err != nil {
		t.Fatal(err)
	}
	c := fastboot.NewClient(tr)
	defer c.Close()
	if err := c.SetActive(context.Background(), "b"); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkFlashedSuper: the phone runs slot a, boot_a is the bundle's boot, and every logical partition the
// phone now sees (through the flashed super's metadata) is byte for byte the manifest's record.
func checkFlashedSuper(t *testing.T, em *emulator.Device, out string, m *bundle.Manifest) {
	t.Helper()
	if s := em.CurrentSlot(); s != "a" {
		t.Fatalf("current slot %q after flashing a slot-a super", s)
	}
	if got, want := fileSum(t, em.PartitionPath("boot_a")), fileSum(t, filepath.Join(out, "images/boot.img")); got != want {
		t.Fatal("boot_a is not the bundle's boot.img")
	}
	mountPatched(t, em.PartitionPath("system_a"))
	for _, p := range m.Super.Partitions {
		b, err := os.ReadFile(em.PartitionPath(p.Partition))
		if err != nil {
			t.Fatalf("%s not on the phone: %v", p.Partition, err)
		}
		s := sha256.Sum256(b)
		if hex.EncodeToString(s[:]) != p.SHA256 {
			t.Fatalf("%s on the phone differs from the manifest", p.Partition)
		}
	}
}

// TestSuperBundleFlash flashes an A/B dynamic bundle with a super image to a phone on slot b: romforge
// writes slot a (the super's), flashes super from the bootloader and activates a; the AOSP client running
// flash.sh does the same; --slot b is refused before a byte is written, and so is a phone whose super
// has another size than the image's metadata says.
func TestSuperBundleFlash(t *testing.T) {
	out, m := aliothBundle(t)
	if code, stdout, stderr := runCLI(t, "inspect", "--json", filepath.Join(out, "images/super.img")); code != 0 ||
		!strings.Contains(stdout, `"super"`) || !strings.Contains(stdout, `"system_a"`) || !strings.Contains(stdout, `"dont_care_blocks"`) {
		t.Fatalf("inspect super.img: exit %d\n%s\n%s", code, stdout, stderr)
	}

	em, serial := startEmulator(t, "alioth", emulator.Options{})
	onSlotB(t, serial)
	code, stdout, stderr := runCLI(t, "flash", out, "--serial", serial, "--yes")
	if code != 0 {
		t.Fatalf("flash: exit %d\n%s\n%s", code, stdout, stderr)
	}
	checkFlashedSuper(t, em, out, m)

	if fb, err := exec.LookPath("fastboot"); err != nil {
		t.Log("AOSP fastboot client not installed: flash.sh not run")
	} else {
		em, serial := startEmulator(t, "alioth", emulator.Options{})
		onSlotB(t, serial)
		cmd := exec.Command("sh", filepath.Join(out, "flash.sh"), "-s", serial)
		cmd.Env = append(os.Environ(), "FASTBOOT="+fb)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("flash.sh: %v\n%s", err, b)
		}
		checkFlashedSuper(t, em, out, m)
	}

	em, serial = startEmulator(t, "alioth", emulator.Options{})
	code, _, stderr = runCLI(t, "flash", out, "--serial", serial, "--yes", "--slot", "b")
	if code != exitRefused || !strings.Contains(stderr, "slot-a partitions") || em.Writes() != 0 {
		t.Fatalf("--slot b: exit %d, %d bytes written\n%s", code, em.Writes(), stderr)
	}

	cat, _ := devices.Builtin()
	d, _ := cat.Lookup("alioth")
	other := *d
	sup := *d.Super
	sup.Size += 1 << 30
	other.Super = &sup
	em2, serial2 := startEmulatorFor(t, &other, emulator.Options{})
	code, _, stderr = runCLI(t, "flash", out, "--serial", serial2, "--yes")
	if code != exitRefused || !strings.Contains(stderr, "cannot go to super") || em2.Writes() != 0 {
		t.Fatalf("super of another size: exit %d, %d bytes written\n%s", code, em2.Writes(), stderr)
	}
}

// mountPatched loop-mounts a flashed system partition with the kernel (as root) and checks the patched
// tree is what the kernel sees: the cloud messaging app gone, its hosts blocked.
func mountPatched(t *testing.T, partition string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Log("not root: the kernel mount of the flashed system is skipped")
		return
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop,ro", partition, mnt).CombinedOutput(); err != nil {
		t.Logf("kernel mount unavailable: %v %s", err, out)
		return
	}
	defer exec.Command("umount", mnt).Run()
	if _, err := os.Stat(filepath.Join(mnt, "app/XMSF")); err == nil {
		t.Fatal("the mounted flashed system still has app/XMSF")
	}
	if _, err := os.Stat(filepath.Join(mnt, "build.prop")); err != nil {
		t.Fatalf("the mounted flashed system lacks build.prop: %v", err)
	}
	hosts, _ := os.ReadFile(filepath.Join(mnt, "etc/hosts"))
	if !strings.Contains(string(hosts), "0.0.0.0 api.xmpush.xiaomi.com") {
		t.Fatalf("mounted hosts:\n%s", hosts)
	}
}

// TestSuperBundleAOnly: an A-only dynamic device (miatoll) gets a super without slot suffixes, flashed
// from the bootloader with no set_active; the phone's system is the bundle's, patched.
func TestSuperBundleAOnly(t *testing.T) {
	rom := filepath.Join(t.TempDir(), "miatoll.zip")
	f, _ := os.Create(rom)
	if err := sample.ABROM(context.Background(), f, "miatoll"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(t.TempDir(), "bundle")
	if code, stdout, stderr := runCLI(t, "build", "--device", "miatoll", "--input", rom, "-o", out); code != 0 {
		t.Fatalf("build: exit %d\n%s\n%s", code, stdout, stderr)
	}
	m, err := bundle.Read(out)
	if err != nil || m.Super == nil || m.Super.Slot != "" {
		t.Fatalf("manifest: %v, super %+v", err, m.Super)
	}
	for _, s := range m.Steps {
		if s.Op == "set_active" {
			t.Fatal("set_active planned on an A-only device")
		}
	}
	em, serial := startEmulator(t, "miatoll", emulator.Options{})
	if code, stdout, stderr := runCLI(t, "flash", out, "--serial", serial, "--yes"); code != 0 {
		t.Fatalf("flash: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, p := range m.Super.Partitions {
		if strings.HasSuffix(p.Partition, "_a") {
			t.Fatalf("slot suffix on an A-only device: %s", p.Partition)
		}
		if got := fileSum(t, em.PartitionPath(p.Partition)); got != p.SHA256 {
			t.Fatalf("%s on the phone differs from the manifest", p.Partition)
		}
	}
	mountPatched(t, em.PartitionPath("system"))
}
