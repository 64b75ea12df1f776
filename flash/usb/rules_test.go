package usb

import (
	"fmt"
	"os"
	"regexp"
	"testing"

	"github.com/romforge/romforge/devices"
)

// The udev rules grant access to every vendor the device catalog lists, and each rule line is well formed.
func TestUdevRulesCoverCatalog(t *testing.T) {
	b, err := os.ReadFile("../../scripts/51-android-fastboot.rules")
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^ATTR\{idVendor\}=="([0-9a-f]{4})", MODE="0660", GROUP="plugdev", TAG\+="uaccess"$`)
	have := map[string]bool{}
	for _, m := range line.FindAllStringSubmatch(string(b), -1) {
		have[m[1]] = true
	}
	cat, err := devices.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range cat.Devices {
		for _, id := range d.USBIDs {
			if v := fmt.Sprintf("%04x", uint16(id.Vendor)); !have[v] {
				t.Errorf("%s: vendor %s has no udev rule", d.Codename, v)
			}
		}
	}
	for _, v := range []string{"2717", "18d1", "05c6", "0e8d", "04e8", "2a70", "22b8", "0fce"} {
		if !have[v] {
			t.Errorf("vendor %s has no udev rule", v)
		}
	}
}
