package usb

import (
	"encoding/binary"
	"unicode/utf16"
)

// Standard USB descriptor parsing for transports that read descriptors from the device itself (WinUSB)
// rather than from sysfs.

// deviceDescriptor is the part of the 18-byte device descriptor discovery needs.
type deviceDescriptor struct {
	VendorID, ProductID uint16
	Manufacturer        uint8 // string indexes, 0 = none
	Product             uint8
	SerialNumber        uint8
}

func parseDeviceDescriptor(b []byte) (deviceDescriptor, bool) {
	if len(b) < 18 || b[0] < 18 || b[1] != 1 {
		return deviceDescriptor{}, false
	}
	le := binary.LittleEndian
	return deviceDescriptor{VendorID: le.Uint16(b[8:]), ProductID: le.Uint16(b[10:]), Manufacturer: b[14], Product: b[15], SerialNumber: b[16]}, true
}

// parseStringDescriptor decodes a UTF-16LE string descriptor; malformed ones give "".
func parseStringDescriptor(b []byte) string {
	if len(b) < 2 || b[1] != 3 || b[0] < 2 || int(b[0]) > len(b) || b[0]%2 != 0 {
		return ""
	}
	n := int(b[0])
	u := make([]uint16, 0, (n-2)/2)
	for i := 2; i+1 < n; i += 2 {
		u = append(u, binary.LittleEndian.Uint16(b[i:]))
	}
	return string(utf16.Decode(u))
}

// endpoint is one pipe of an interface as the OS reports it.
type endpoint struct {
	Address   uint8
	Bulk      bool
	MaxPacket uint16
}

// fastbootInterface checks an interface descriptor (9 bytes) and its endpoints and fills in what a
// DeviceInfo needs: the class triple ff/42/03 and a bulk IN and a bulk OUT endpoint.
func fastbootInterface(iface []byte, eps []endpoint) (DeviceInfo, bool) {
	if len(iface) < 9 || iface[1] != 4 || iface[5] != ClassVendor || iface[6] != SubclassFastboot || iface[7] != ProtocolFastboot {
		return DeviceInfo{}, false
	}
	info := DeviceInfo{Interface: int(iface[2])}
	for _, ep := range eps {
		if !ep.Bulk {
			continue
		}
		if ep.Address&0x80 != 0 {
			if info.EndpointIn == 0 {
				info.EndpointIn = ep.Address
			}
		} else if info.EndpointOut == 0 {
			info.EndpointOut = ep.Address
			info.MaxPacket = int(ep.MaxPacket & 0x7ff)
		}
	}
	if info.EndpointIn == 0 || info.EndpointOut == 0 {
		return DeviceInfo{}, false
	}
	return info, true
}
