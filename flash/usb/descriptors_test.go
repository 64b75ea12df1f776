package usb

import (
	"math/rand/v2"
	"testing"
	"unicode/utf16"
)

func TestParseDescriptors(t *testing.T) {
	dev := []byte{18, 1, 0x00, 0x02, 0, 0, 0, 64, 0xd1, 0x18, 0x0d, 0xd0, 0x00, 0x01, 1, 2, 3, 1}
	d, ok := parseDeviceDescriptor(dev)
	if !ok || d.VendorID != 0x18d1 || d.ProductID != 0xd00d || d.Manufacturer != 1 || d.Product != 2 || d.SerialNumber != 3 {
		t.Fatalf("%+v %v", d, ok)
	}
	if _, ok := parseDeviceDescriptor(dev[:17]); ok {
		t.Fatal("short device descriptor accepted")
	}
	s := "RF1234ü"
	u := utf16.Encode([]rune(s))
	b := []byte{byte(2 + 2*len(u)), 3}
	for _, c := range u {
		b = append(b, byte(c), byte(c>>8))
	}
	if got := parseStringDescriptor(b); got != s {
		t.Fatalf("string %q", got)
	}
	// Hostile descriptors: any bytes give a string or "", never a panic.
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 5000; i++ {
		p := make([]byte, rng.IntN(40))
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		parseStringDescriptor(p)
		parseDeviceDescriptor(p)
		fastbootInterface(p, nil)
	}

	iface := []byte{9, 4, 1, 0, 2, 0xff, 0x42, 0x03, 0}
	eps := []endpoint{{0x83, false, 8}, {0x81, true, 512}, {0x02, true, 512}}
	info, ok := fastbootInterface(iface, eps)
	if !ok || info.Interface != 1 || info.EndpointIn != 0x81 || info.EndpointOut != 0x02 || info.MaxPacket != 512 {
		t.Fatalf("%+v %v", info, ok)
	}
	adb := append([]byte(nil), iface...)
	adb[7] = 0x01
	if _, ok := fastbootInterface(adb, eps); ok {
		t.Fatal("adb interface taken for fastboot")
	}
	if _, ok := fastbootInterface(iface, eps[:2]); ok {
		t.Fatal("interface without bulk OUT accepted")
	}
}

func TestParseFastbootDevices(t *testing.T) {
	out := "RF280A20C4\tfastboot\n\n0123456789ABCDEF fastbootd\ntcp:192.168.1.5:5554\tfastboot\n< waiting for any device >\ngarbage\n"
	list := parseFastbootDevices(out)
	if len(list) != 2 || list[0].Serial != "RF280A20C4" || list[1].Serial != "0123456789ABCDEF" {
		t.Fatalf("%+v", list)
	}
	if parseFastbootDevices("") != nil {
		t.Fatal("devices from nothing")
	}
}
