package usb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/romforge/romforge/internal/failure"
)

// The fastboot interface's class triple.
const (
	ClassVendor      = 0xff
	SubclassFastboot = 0x42
	ProtocolFastboot = 0x03
)

// DeviceInfo describes one fastboot interface found on USB.
type DeviceInfo struct {
	Serial       string `json:"serial"`
	VendorID     uint16 `json:"vendor_id"`
	ProductID    uint16 `json:"product_id"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Product      string `json:"product,omitempty"`
	Bus          int    `json:"bus"`
	Address      int    `json:"address"`
	Speed        string `json:"speed,omitempty"` // Mb/s as sysfs says: 12, 480, 5000…
	Interface    int    `json:"interface"`
	EndpointIn   uint8  `json:"endpoint_in"`
	EndpointOut  uint8  `json:"endpoint_out"`
	MaxPacket    int    `json:"max_packet"` // of the OUT endpoint
	SysfsName    string `json:"sysfs_name"` // e.g. 1-2
}

// DevPath is the usbfs node of the device.
func (d *DeviceInfo) DevPath() string {
	return fmt.Sprintf("/dev/bus/usb/%03d/%03d", d.Bus, d.Address)
}

// ErrUnsupported is returned where this build has no USB access.
var ErrUnsupported = failure.Kinded(failure.ErrIO, errors.New("usb: this build has no USB access of its own on this system: install Android platform-tools so that fastboot is on PATH (or set ROMFORGE_FASTBOOT), which romforge then drives for the data path, or use a tcp:/udp: serial"))

// ErrNoDevice says no fastboot device matched.
var ErrNoDevice = errors.New("usb: no fastboot device found")

// ErrDisconnected is returned by transfers after the device went away (unplugged, rebooted).
var ErrDisconnected = failure.Kinded(failure.ErrIO, errors.New("usb: the device was disconnected (unplugged or rebooting)"))

// ErrStalled is returned when the device halted an endpoint (it refused a transfer). The halt has been
// cleared when it is returned, so the next command can work without a replug.
var ErrStalled = failure.Kinded(failure.ErrIO, errors.New("the device stalled the endpoint (refused the transfer); the halt was cleared: run the command again, and reboot the phone to the bootloader if it keeps happening"))

// UdevHint is added to permission errors.
const UdevHint = "no permission to open the USB device: install the udev rules with 'sudo scripts/install-udev-rules.sh' (then replug the phone), or run as root"

// ListSysfs lists the fastboot interfaces described under a sysfs devices directory (normally
// /sys/bus/usb/devices). Unreadable or malformed entries are skipped: a half-enumerated device is not
// a fastboot device yet.
func ListSysfs(root string) ([]DeviceInfo, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("usb: %w", err))
	}
	var out []DeviceInfo
	for _, e := range ents {
		name := e.Name()
		if strings.Contains(name, ":") {
			continue // interfaces are visited from their device
		}
		dir := filepath.Join(root, name)
		vid, ok1 := readHex(dir, "idVendor")
		pid, ok2 := readHex(dir, "idProduct")
		bus, ok3 := readDec(dir, "busnum")
		addr, ok4 := readDec(dir, "devnum")
		if !ok1 || !ok2 || !ok3 || !ok4 {
			continue
		}
		ifaces, _ := filepath.Glob(filepath.Join(root, name+":*"))
		sort.Strings(ifaces)
		for _, ifd := range ifaces {
			info, ok := parseInterface(ifd)
			if !ok {
				continue
			}
			info.Serial = readString(dir, "serial")
			info.VendorID, info.ProductID = uint16(vid), uint16(pid)
			info.Manufacturer = readString(dir, "manufacturer")
			info.Product = readString(dir, "product")
			info.Bus, info.Address = bus, addr
			info.Speed = readString(dir, "speed")
			info.SysfsName = name
			out = append(out, info)
			break
		}
	}
	return out, nil
}

func parseInterface(dir string) (DeviceInfo, bool) {
	cls, ok1 := readHex(dir, "bInterfaceClass")
	sub, ok2 := readHex(dir, "bInterfaceSubClass")
	proto, ok3 := readHex(dir, "bInterfaceProtocol")
	num, ok4 := readHex(dir, "bInterfaceNumber")
	if !ok1 || !ok2 || !ok3 || !ok4 || cls != ClassVendor || sub != SubclassFastboot || proto != ProtocolFastboot {
		return DeviceInfo{}, false
	}
	info := DeviceInfo{Interface: int(num)}
	eps, _ := filepath.Glob(filepath.Join(dir, "ep_*"))
	sort.Strings(eps)
	for _, ep := range eps {
		addr, ok1 := readHex(ep, "bEndpointAddress")
		attr, ok2 := readHex(ep, "bmAttributes")
		if !ok1 || !ok2 || attr&0x03 != 0x02 { // bulk only
			continue
		}
		if addr&0x80 != 0 {
			if info.EndpointIn == 0 {
				info.EndpointIn = uint8(addr)
			}
		} else if info.EndpointOut == 0 {
			info.EndpointOut = uint8(addr)
			if mp, ok := readHex(ep, "wMaxPacketSize"); ok {
				info.MaxPacket = int(mp & 0x7ff)
			}
		}
	}
	if info.EndpointIn == 0 || info.EndpointOut == 0 {
		return DeviceInfo{}, false
	}
	return info, true
}

func readString(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	if len(b) > 4096 {
		b = b[:4096]
	}
	return strings.TrimSpace(string(b))
}

func readHex(dir, name string) (uint64, bool) {
	s := readString(dir, name)
	if s == "" {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 32)
	return v, err == nil
}

func readDec(dir, name string) (int, bool) {
	v, err := strconv.Atoi(readString(dir, name))
	return v, err == nil && v >= 0
}

// PortPrefix names a device by where it is plugged in rather than by its serial number, as AOSP fastboot
// accepts `-s usb:1-2.3`. Phones that share a serial (some factory images ship "0123456789ABCDEF") or report
// none can only be told apart this way.
const PortPrefix = "usb:"

// Name is how a device is addressed: its serial, or usb:PORT (PortPrefix + sysfs name) when the serial
// is empty.
func (d *DeviceInfo) Name() string {
	if d.Serial == "" {
		return PortPrefix + d.SysfsName
	}
	return d.Serial
}

// Location is the device's physical identity: the port it is plugged in (usb:1-2.3).
func (d *DeviceInfo) Location() string { return PortPrefix + d.SysfsName }

// Location is where the open device is plugged in; phones sharing a serial are told apart by it.
func (d *Device) Location() string {
	if d.Info.SysfsName == "" {
		return ""
	}
	return d.Info.Location()
}

// Names returns one name per device that picks that device and no other: the serial where it is unique,
// usb:PORT where several devices share a serial or have none.
func Names(list []DeviceInfo) []string {
	count := map[string]int{}
	for _, d := range list {
		count[d.Serial]++
	}
	out := make([]string, 0, len(list))
	for _, d := range list {
		// Without a port (a listing through platform-tools) the serial is all there is.
		if d.SysfsName == "" || d.Serial != "" && count[d.Serial] == 1 && !strings.HasPrefix(d.Serial, PortPrefix) {
			out = append(out, d.Serial)
		} else {
			out = append(out, d.Location())
		}
	}
	return out
}

// Ports names every device by the port it is plugged in (usb:1-2.3), or by its serial where the port is
// unknown. A station watching for phones uses these: a phone keeps its name for as long as it stays
// plugged in, whatever phones come and go beside it (with Names, a phone's name would change from its
// serial to its port when a second phone with the same serial appeared, and the station would take it
// for a new phone).
func Ports(list []DeviceInfo) []string {
	out := make([]string, 0, len(list))
	for _, d := range list {
		if d.SysfsName == "" {
			out = append(out, d.Serial)
		} else {
			out = append(out, d.Location())
		}
	}
	return out
}

// pick chooses the device for serial: a serial number, usb:PORT, or "" for the only one. A serial that
// two devices answer to is refused: flashing whichever enumerated first could write the wrong phone.
func pick(list []DeviceInfo, serial string) (DeviceInfo, error) {
	if serial == "" {
		switch len(list) {
		case 0:
			return DeviceInfo{}, failure.Kinded(failure.ErrIO, fmt.Errorf("%w: connect a phone in fastboot mode (or give a tcp:/udp: serial)", ErrNoDevice))
		case 1:
			return list[0], nil
		}
		return DeviceInfo{}, failure.Kinded(failure.ErrUsage, fmt.Errorf("usb: %d fastboot devices connected (%s): choose one with --serial", len(list), strings.Join(Names(list), ", ")))
	}
	// A port is checked first: a device whose serial merely looks like "usb:1-2" must not stand in for
	// the phone plugged in at 1-2.
	if port, ok := strings.CutPrefix(serial, PortPrefix); ok {
		for _, d := range list {
			if d.SysfsName == port {
				return d, nil
			}
		}
	}
	var found []DeviceInfo
	for _, d := range list {
		if d.Serial == serial {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return DeviceInfo{}, failure.Kinded(failure.ErrIO, fmt.Errorf("%w with serial %q (%d other fastboot devices connected)", ErrNoDevice, serial, len(list)))
	}
	var ports []string
	for _, d := range found {
		ports = append(ports, d.Location())
	}
	return DeviceInfo{}, failure.Kinded(failure.ErrUsage, fmt.Errorf("usb: %d phones answer to serial %q, at %s: name each by the port it is plugged in (--serial %s)", len(found), serial, strings.Join(ports, ", "), ports[0]))
}
