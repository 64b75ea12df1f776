package usb

import (
	"testing"
	"unicode/utf8"
)

// FuzzDescriptors feeds device, string and interface descriptors as a device may send them: no panic,
// no allocation beyond the descriptor, and a fastboot interface only with both bulk endpoints.
func FuzzDescriptors(f *testing.F) {
	f.Add([]byte{18, 1, 0, 2, 0, 0, 0, 64, 0xd1, 0x18, 0xe0, 0x4e, 0, 1, 1, 2, 3, 1}, []byte{10, 3, 'f', 0, 'a', 0, 's', 0, 't', 0}, []byte{9, 4, 0, 0, 2, 0xff, 0x42, 3, 0}, byte(0x81), byte(0x01))
	f.Add([]byte{}, []byte{255, 3}, []byte{9, 4}, byte(0), byte(0))
	f.Fuzz(func(t *testing.T, dev, str, iface []byte, in, out byte) {
		parseDeviceDescriptor(dev)
		if s := parseStringDescriptor(str); len(s) > 3*len(str) || !utf8.ValidString(s) {
			t.Fatalf("string descriptor of %d bytes decoded to %d bytes (valid UTF-8: %v)", len(str), len(s), utf8.ValidString(s))
		}
		info, ok := fastbootInterface(iface, []endpoint{{Address: in, Bulk: true, MaxPacket: 512}, {Address: out, Bulk: true, MaxPacket: 512}})
		if ok && (info.EndpointIn&0x80 == 0 || info.EndpointOut&0x80 != 0 || info.EndpointOut == 0) {
			t.Fatalf("accepted interface with endpoints in %#x out %#x", info.EndpointIn, info.EndpointOut)
		}
	})
}
