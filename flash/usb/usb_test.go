package usb

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/internal/failure"
)

// fakeSysfs writes files under root: path → content.
func fakeSysfs(t *testing.T, files map[string]string) string {
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func device(prefix, vid, pid, serial, bus, dev string) map[string]string {
	return map[string]string{
		prefix + "/idVendor": vid, prefix + "/idProduct": pid, prefix + "/serial": serial,
		prefix + "/busnum": bus, prefix + "/devnum": dev, prefix + "/manufacturer": "Xiaomi",
		prefix + "/product": "Android", prefix + "/speed": "480",
	}
}

func iface(prefix, cls, sub, proto, num string, eps ...[3]string) map[string]string {
	m := map[string]string{prefix + "/bInterfaceClass": cls, prefix + "/bInterfaceSubClass": sub,
		prefix + "/bInterfaceProtocol": proto, prefix + "/bInterfaceNumber": num}
	for _, ep := range eps {
		d := prefix + "/ep_" + ep[0]
		m[d+"/bEndpointAddress"] = ep[0]
		m[d+"/bmAttributes"] = ep[1]
		m[d+"/wMaxPacketSize"] = ep[2]
	}
	return m
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestListSysfs(t *testing.T) {
	bulkIn, bulkOut := [3]string{"81", "02", "0200"}, [3]string{"01", "02", "0200"}
	root := fakeSysfs(t, merge(
		// A Xiaomi phone in fastboot mode.
		device("1-2", "18d1", "d00d", "abc123", "1", "7"),
		iface("1-2:1.0", "ff", "42", "03", "00", bulkIn, bulkOut, [3]string{"83", "03", "0008"}),
		// A phone in adb mode (ff/42/01) is not a fastboot device.
		device("1-3", "2717", "ff48", "adbphone", "1", "8"),
		iface("1-3:1.0", "ff", "42", "01", "00", bulkIn, bulkOut),
		// A composite device whose fastboot interface is the second one, super-speed.
		device("2-1", "0e8d", "201c", "mtk0001", "2", "3"),
		iface("2-1:1.0", "08", "06", "50", "00", bulkIn, bulkOut),
		iface("2-1:1.1", "ff", "42", "03", "01", [3]string{"82", "02", "0400"}, [3]string{"02", "02", "0400"}),
		// A fastboot interface without a bulk OUT endpoint is unusable.
		device("3-1", "18d1", "4ee0", "broken", "3", "2"),
		iface("3-1:1.0", "ff", "42", "03", "00", bulkIn, [3]string{"01", "03", "0040"}),
		// A root hub and a half-enumerated device (no devnum).
		device("usb1", "1d6b", "0002", "0000:00:14.0", "1", "1"),
		map[string]string{"4-1/idVendor": "18d1"},
	))
	list, err := ListSysfs(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("found %d devices: %+v", len(list), list)
	}
	a, b := list[0], list[1]
	if a.Serial != "abc123" || a.VendorID != 0x18d1 || a.ProductID != 0xd00d || a.Bus != 1 || a.Address != 7 ||
		a.Interface != 0 || a.EndpointIn != 0x81 || a.EndpointOut != 0x01 || a.MaxPacket != 512 || a.Speed != "480" {
		t.Errorf("first device: %+v", a)
	}
	if a.DevPath() != "/dev/bus/usb/001/007" {
		t.Errorf("dev path %s", a.DevPath())
	}
	if b.Serial != "mtk0001" || b.Interface != 1 || b.EndpointIn != 0x82 || b.EndpointOut != 0x02 || b.MaxPacket != 1024 || b.SysfsName != "2-1" {
		t.Errorf("second device: %+v", b)
	}
	if _, err := ListSysfs(filepath.Join(root, "missing")); !errors.Is(err, failure.ErrIO) {
		t.Errorf("missing root: %v", err)
	}

	if d, err := pick(list, "mtk0001"); err != nil || d.Bus != 2 {
		t.Errorf("pick by serial: %+v %v", d, err)
	}
	if _, err := pick(list, ""); !errors.Is(err, failure.ErrUsage) {
		t.Errorf("pick among two without a serial: %v", err)
	}
	if _, err := pick(list, "nope"); !errors.Is(err, ErrNoDevice) || !errors.Is(err, failure.ErrIO) {
		t.Errorf("pick unknown serial: %v", err)
	}
	if d, err := pick(list[:1], ""); err != nil || d.Serial != "abc123" {
		t.Errorf("pick the only one: %v", err)
	}
	if _, err := pick(nil, ""); !errors.Is(err, ErrNoDevice) {
		t.Errorf("pick from none: %v", err)
	}
}

// Phones that share a serial, or report none, are still each reachable: Names gives every device a name
// that picks it and no other, and a serial that several devices answer to is refused rather than guessed.
func TestNamesPickEachDevice(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	serials := []string{"", "0123456789ABCDEF", "abc", "usb:9-9", "usb:1-1.0", "x"}
	for round := range 500 {
		n := 1 + rng.Intn(8)
		list := make([]DeviceInfo, n)
		for i := range list {
			// Distinct ports (a port holds one device), serials drawn from a small pool so they collide.
			list[i] = DeviceInfo{Serial: serials[rng.Intn(len(serials))], SysfsName: fmt.Sprintf("%d-%d.%d", 1+i%3, 1+i, rng.Intn(4)), Bus: 1 + i%3, Address: 2 + i}
		}
		names := Names(list)
		seen := map[string]bool{}
		for i, name := range names {
			if seen[name] {
				t.Fatalf("round %d: name %q given twice: %q for %+v", round, name, names, list)
			}
			seen[name] = true
			d, err := pick(list, name)
			if err != nil || d.SysfsName != list[i].SysfsName {
				t.Fatalf("round %d: pick(%q) = %+v, %v; want the device at %s", round, name, d, err, list[i].SysfsName)
			}
		}
		count := map[string]int{}
		for _, d := range list {
			count[d.Serial]++
		}
		for s, c := range count {
			if s == "" || c < 2 || strings.HasPrefix(s, PortPrefix) { // a usb: name means a port first
				continue
			}
			_, err := pick(list, s)
			if !errors.Is(err, failure.ErrUsage) || !strings.Contains(err.Error(), "--serial usb:") {
				t.Fatalf("round %d: serial %q shared by %d phones: pick gave %v, want a refusal naming the ports", round, s, c, err)
			}
		}
	}
}

// The ioctl numbers must equal <linux/usbdevice_fs.h>'s on 64-bit Linux (x86-64, arm64).
func TestIoctlNumbers(t *testing.T) {
	if ptrSize := 8; ptrSize != int(sizeofPtr) {
		t.Skip("constants below are for 64-bit platforms")
	}
	cases := []struct {
		name      string
		got, want uintptr
	}{
		{"USBDEVFS_BULK", usbdevfsBulk, 0xc0185502},
		{"USBDEVFS_CLAIMINTERFACE", usbdevfsClaimInterface, 0x8004550f},
		{"USBDEVFS_RELEASEINTERFACE", usbdevfsReleaseInterface, 0x80045510},
		{"USBDEVFS_IOCTL", usbdevfsIoctl, 0xc0105512},
		{"USBDEVFS_CLEAR_HALT", usbdevfsClearHalt, 0x80045515},
		{"USBDEVFS_DISCONNECT", usbdevfsDisconnect, 0x5516},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

// Property: a phone keeps its Ports name while it stays plugged in, whatever phones (with the same
// serial or none) come and go beside it, and the name picks that phone.
func TestPortsNamesAreStable(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	ports := []string{"1-1", "1-2", "1-3.1", "1-3.2", "2-1"}
	plugged := map[string]DeviceInfo{} // port → device
	named := map[string]string{}       // port → the name it had when last listed
	for step := range 2000 {
		port := ports[rng.Intn(len(ports))]
		if _, ok := plugged[port]; ok && rng.Intn(2) == 0 {
			delete(plugged, port)
			delete(named, port)
		} else if !ok {
			plugged[port] = DeviceInfo{Serial: []string{"", "0123456789ABCDEF", "abc"}[rng.Intn(3)], SysfsName: port}
		}
		var list []DeviceInfo
		for _, p := range ports {
			if d, ok := plugged[p]; ok {
				list = append(list, d)
			}
		}
		for i, name := range Ports(list) {
			d := list[i]
			if prev, ok := named[d.SysfsName]; ok && prev != name {
				t.Fatalf("step %d: the phone at %s was %q and is now %q while still plugged in", step, d.SysfsName, prev, name)
			}
			named[d.SysfsName] = name
			if got, err := pick(list, name); err != nil || got.SysfsName != d.SysfsName {
				t.Fatalf("step %d: %q picks %+v, %v; want the phone at %s", step, name, got, err, d.SysfsName)
			}
		}
	}
}
