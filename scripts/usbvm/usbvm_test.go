// Package usbvm runs scripts/usbvm/run.sh: a QEMU guest where dummy_hcd connects a USB host controller
// to a device controller, `romforge emulate --listen usb` is the phone, and the AOSP client and romforge
// flash it through the kernel's usbfs, with a fault matrix (cable pull, stall, second program, Ctrl-C,
// usbfs memory). Every USBVM-RESULT line of the guest becomes a subtest.
package usbvm

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestUSBRig boots the rig when qemu-system-x86_64 is installed (scripts/install-validators.sh does it
// as root). ROMFORGE_USBVM_BENCH_MIB=256 adds the benchmark: that many MiB flashed by both clients in the
// same run, romforge's time at most the AOSP client's. ROMFORGE_USBVM=0 skips it.
func TestUSBRig(t *testing.T) {
	if testing.Short() {
		t.Skip("the USB rig boots a VM (minutes under TCG); not in -short")
	}
	if os.Getenv("ROMFORGE_USBVM") == "0" {
		t.Skip("ROMFORGE_USBVM=0")
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("the rig boots Debian's amd64 kernel; this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed (scripts/install-validators.sh installs qemu-system-x86 as root)")
	}
	for _, tool := range []string{"apt-get", "dpkg-deb", "cpio", "gzip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is needed to build the rig: %v", tool, err)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("/bin/busybox (busybox-static) is not installed")
	}
	work := filepath.Join(os.TempDir(), "romforge-usbvm") // the kernel .deb is cached there between runs
	bench, _ := strconv.Atoi(os.Getenv("ROMFORGE_USBVM_BENCH_MIB"))
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "./run.sh")
	cmd.Env = append(os.Environ(), "USBVM_WORK="+work, "BENCH_MIB="+strconv.Itoa(bench), "QEMU_TIMEOUT=480")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("run.sh (%.0fs):\n%s", time.Since(start).Seconds(), out)
	console, cerr := os.Open(filepath.Join(work, "console.log"))
	if cerr != nil {
		t.Fatalf("no console log: %v (run.sh: %v)", cerr, err)
	}
	defer console.Close()
	results := regexp.MustCompile(`^USBVM-RESULT (\S+) (PASS|FAIL) ?(.*)$`)
	benchLine := regexp.MustCompile(`^USBVM-BENCH (aosp|romforge) \d+MiB rc=(\d+) ([0-9.]+)s`)
	n, done := 0, false
	times := map[string]float64{}
	sc := bufio.NewScanner(console)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "USBVM-DONE") {
			done = true
		}
		if m := benchLine.FindStringSubmatch(line); m != nil {
			t.Log(line)
			if m[2] != "0" {
				t.Errorf("benchmark run failed: %s", line)
			}
			s, _ := strconv.ParseFloat(m[3], 64)
			times[m[1]] += s
		}
		m := results.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n++
		t.Run(m[1], func(t *testing.T) {
			if m[2] != "PASS" {
				t.Error(m[3])
			} else {
				t.Log(m[3])
			}
		})
	}
	if !done || n == 0 {
		t.Fatalf("the guest did not finish (%d results; run.sh: %v); see %s/console.log", n, err, work)
	}
	if bench > 0 {
		t.Logf("benchmark %d MiB (two runs each, summed): romforge %.2fs, AOSP fastboot %.2fs", bench, times["romforge"], times["aosp"])
		if times["romforge"] > times["aosp"] {
			t.Errorf("romforge took %.2fs, more than the AOSP client's %.2fs", times["romforge"], times["aosp"])
		}
	}
	if err != nil && !t.Failed() {
		t.Errorf("run.sh: %v", err)
	}
}
