package usb

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"time"
)

// listWithFastboot lists devices through platform-tools' `fastboot devices` where this build has no USB
// access of its own; Dial then drives the same binary for the data path. Without the binary it returns
// ErrUnsupported.
func listWithFastboot() ([]DeviceInfo, error) {
	bin := os.Getenv("ROMFORGE_FASTBOOT")
	if bin == "" {
		p, err := exec.LookPath("fastboot")
		if err != nil {
			return nil, ErrUnsupported
		}
		bin = p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "devices").Output()
	if err != nil {
		return nil, ErrUnsupported
	}
	return parseFastbootDevices(string(out)), nil
}

// parseFastbootDevices reads `fastboot devices` output: "SERIAL<tab>fastboot" per USB device (network
// devices, named tcp:/udp:, are reached by their serial and left out).
func parseFastbootDevices(out string) []DeviceInfo {
	var list []DeviceInfo
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || (f[1] != "fastboot" && f[1] != "fastbootd") {
			continue
		}
		if strings.HasPrefix(f[0], "tcp:") || strings.HasPrefix(f[0], "udp:") {
			continue
		}
		list = append(list, DeviceInfo{Serial: f[0]})
	}
	return list
}
