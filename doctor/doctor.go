// Package doctor checks the machine romforge runs on: USB access for fastboot, the cache directory, free
// disk space and the optional reference tools. Each problem comes with one concrete fix.
package doctor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Check is one result.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
	// Optional checks report missing extras; they do not make the machine unfit.
	Optional bool `json:"optional"`
}

// Options says where to look.
type Options struct {
	CacheDir string
	// MinFreeBytes is the free space a build needs (default 16 GiB: unpacked payloads and rebuilt images).
	MinFreeBytes uint64
	// Root overrides "/" for the USB and udev checks (tests).
	Root string
}

// Run performs every check.
func Run(opt Options) []Check {
	if opt.MinFreeBytes == 0 {
		opt.MinFreeBytes = 16 << 30
	}
	if opt.Root == "" {
		opt.Root = "/"
	}
	var out []Check
	if runtime.GOOS == "linux" {
		out = append(out, checkUSB(opt.Root), checkUdev(opt.Root), checkUsbfsMemory(opt.Root))
	} else {
		out = append(out, usbGuidance(runtime.GOOS, exec.LookPath))
	}
	out = append(out, checkCache(opt.CacheDir))
	out = append(out, checkDisk(opt.CacheDir, opt.MinFreeBytes))
	for _, t := range []struct{ name, pkg, why string }{
		{"fastboot", "fastboot", "USB flashing on macOS/Windows and side-by-side checks"},
		{"simg2img", "android-sdk-libsparse-utils", "cross-checking sparse images"},
		{"e2fsck", "e2fsprogs", "checking ext4 images"},
		{"fsck.erofs", "erofs-utils", "checking EROFS images"},
	} {
		c := Check{Name: "tool " + t.name, Optional: true}
		if p, err := exec.LookPath(t.name); err == nil {
			c.OK, c.Detail = true, p
		} else {
			c.Detail = "not on PATH (optional: " + t.why + ")"
			c.Fix = "apt-get install " + t.pkg
		}
		out = append(out, c)
	}
	return out
}

// Problems counts failed checks that are not optional.
func Problems(cs []Check) int {
	n := 0
	for _, c := range cs {
		if !c.OK && !c.Optional {
			n++
		}
	}
	return n
}

func checkUSB(root string) Check {
	c := Check{Name: "usb access"}
	dir := filepath.Join(root, "dev/bus/usb")
	ents, err := os.ReadDir(dir)
	if err != nil {
		c.Detail = fmt.Sprintf("%s is not readable: %v", dir, err)
		c.Fix = "mount usbfs (it is missing in some containers) or run romforge on the host"
		return c
	}
	c.OK = true
	c.Detail = fmt.Sprintf("%s readable (%d buses)", dir, len(ents))
	return c
}

func checkUdev(root string) Check {
	c := Check{Name: "udev rules"}
	if os.Geteuid() == 0 {
		c.OK, c.Detail = true, "running as root: device permissions are not needed"
		return c
	}
	for _, d := range []string{"etc/udev/rules.d", "lib/udev/rules.d", "usr/lib/udev/rules.d"} {
		files, _ := filepath.Glob(filepath.Join(root, d, "*.rules"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err == nil && strings.Contains(string(b), "18d1") && strings.Contains(string(b), "2717") {
				c.OK, c.Detail = true, "fastboot rules in "+f
				return c
			}
		}
	}
	c.Detail = "no udev rule grants access to fastboot devices (Google 18d1, Xiaomi 2717)"
	c.Fix = "sudo ./scripts/install-udev-rules.sh (or apt-get install android-sdk-platform-tools-common)"
	return c
}

func checkCache(dir string) Check {
	c := Check{Name: "cache dir"}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.Detail, c.Fix = fmt.Sprintf("cannot create %s: %v", dir, err), "pass --cache-dir DIR pointing to a writable place"
		return c
	}
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		c.Detail, c.Fix = fmt.Sprintf("%s is not writable: %v", dir, err), "fix its permissions or pass --cache-dir DIR"
		return c
	}
	f.Close()
	os.Remove(f.Name())
	c.OK, c.Detail = true, dir+" is writable"
	return c
}

func checkDisk(dir string, min uint64) Check {
	c := Check{Name: "free disk"}
	free, err := freeBytes(dir)
	if err != nil {
		c.OK, c.Optional, c.Detail = true, true, "free space unknown: "+err.Error()
		return c
	}
	c.Detail = fmt.Sprintf("%.1f GiB free in %s", float64(free)/(1<<30), dir)
	if free < min {
		c.Fix = fmt.Sprintf("free at least %.0f GiB there, or pass --cache-dir on a bigger disk", float64(min)/(1<<30))
		return c
	}
	c.OK = true
	return c
}

// checkUsbfsMemory reports usbcore's usbfs_memory_mb: the buffer budget every program using usbfs
// shares. romforge keeps up to 1 MiB in flight per phone and shrinks its transfers when the kernel runs
// out, so a low budget slows batches down instead of failing them; below 16 MiB it is worth raising.
func checkUsbfsMemory(root string) Check {
	c := Check{Name: "usbfs_memory_mb", Optional: true}
	p := filepath.Join(root, "sys/module/usbcore/parameters/usbfs_memory_mb")
	b, err := os.ReadFile(p)
	if err != nil {
		c.OK, c.Detail = true, "unknown (no "+p+": usbcore not loaded here)"
		return c
	}
	v := strings.TrimSpace(string(b))
	n, err := strconv.Atoi(v)
	switch {
	case err != nil || n < 0:
		c.Detail = fmt.Sprintf("unexpected value %q in %s", v, p)
	case n == 0:
		c.OK, c.Detail = true, "0 (no limit on usbfs buffers)"
	default:
		c.Detail = fmt.Sprintf("%d MiB shared by all USB programs: about %d phones at full transfer size at once", n, n)
		c.OK = n >= 16
	}
	if !c.OK {
		c.Fix = "echo 256 | sudo tee " + "/sys/module/usbcore/parameters/usbfs_memory_mb (keep it with usbcore.usbfs_memory_mb=256 on the kernel command line)"
	}
	return c
}

// usbGuidance says how USB flashing works on systems without usbfs, and what driver it needs.
func usbGuidance(goos string, lookPath func(string) (string, error)) Check {
	c := Check{Name: "usb access"}
	fb, err := lookPath("fastboot")
	switch goos {
	case "windows":
		// Native WinUSB: no fastboot.exe needed, only the driver.
		c.OK = true
		c.Detail = "USB flashing uses WinUSB directly; the phone's fastboot interface needs a WinUSB driver: the Google USB Driver (Android SDK Manager, or the OEM's driver), or WinUSB assigned with Zadig. --serial exec:SERIAL drives fastboot.exe from platform-tools instead"
		if err == nil {
			c.Detail += " (found " + fb + ")"
		}
		return c
	case "darwin":
		c.Detail = "USB flashing drives fastboot from Android platform-tools (no driver needed on macOS)"
	default:
		c.Detail = "USB flashing drives fastboot from Android platform-tools on " + goos
	}
	if err != nil {
		c.Fix = "install Android platform-tools and put fastboot on PATH (or set ROMFORGE_FASTBOOT); tcp:/udp: serials work without it"
		return c
	}
	c.OK = true
	c.Detail += "; using " + fb
	return c
}
