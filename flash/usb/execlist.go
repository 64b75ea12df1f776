package usb

import (
	"strings"
)

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
