// Package doctor checks the machine romforge runs on: USB access for fastboot, the cache directory, free
// disk space and the optional reference tools. Each problem comes with one concrete fix.
package doctor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
		out = append(out, checkUSB(opt.Root), checkUdev(opt.Root))
	} else {
		out = append(out, Check{Name: "usb", OK: true, Optional: true,
			Detail: "USB flashing on " + runtime.GOOS + " is delegated to a fastboot client on PATH"})
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
