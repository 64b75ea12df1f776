// Package gadget makes this machine a fastboot phone on USB: a configfs gadget with one FunctionFS
// function whose interface has fastboot's class triple (ff/42/03) and a bulk OUT and IN endpoint. Its
// Listener hands each USB session (from the host configuring the device to the next reset or unplug) to
// the emulator as a fastboot.Transport, so `romforge emulate --listen usb` serves the same virtual phone
// over a real USB device controller (a UDC: a board's OTG port, or dummy_hcd's dummy_udc.0 in tests).
// Linux only; it needs root, configfs, libcomposite and usb_f_fs.
package gadget

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/romforge/romforge/internal/failure"
)

// Options describe the gadget.
type Options struct {
	// Name names the configfs gadget directory and the FunctionFS instance (default "romforge").
	Name string
	// VendorID and ProductID default to Google's fastboot ids 18d1:4ee0 (what AOSP bootloaders use).
	VendorID, ProductID uint16
	// Serial, Manufacturer and Product are the device's string descriptors.
	Serial, Manufacturer, Product string
	// UDC is the device controller to bind to ("" → the first one in /sys/class/udc).
	UDC string
	// ConfigFS is where configfs is (or will be) mounted (default /sys/kernel/config).
	ConfigFS string
	// FFSDir is where the FunctionFS instance is mounted (default /dev/ffs-NAME).
	FFSDir string
	// StallOn makes the device halt its IN endpoint instead of answering the first command equal to it
	// (a fault for testing the host's stall handling).
	StallOn string
	// Logf receives what the gadget does (nil: nothing).
	Logf func(format string, args ...any)
}

func (o *Options) defaults() {
	if o.Name == "" {
		o.Name = "romforge"
	}
	if o.VendorID == 0 && o.ProductID == 0 {
		o.VendorID, o.ProductID = 0x18d1, 0x4ee0
	}
	if o.Manufacturer == "" {
		o.Manufacturer = "romforge"
	}
	if o.Product == "" {
		o.Product = "romforge emulator"
	}
	if o.ConfigFS == "" {
		o.ConfigFS = "/sys/kernel/config"
	}
	if o.FFSDir == "" {
		o.FFSDir = "/dev/ffs-" + o.Name
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// ErrUnsupported is returned where this build has no USB gadget support.
var ErrUnsupported = failure.Kinded(failure.ErrUsage, errors.New("gadget: serving fastboot as a USB device needs Linux with configfs, libcomposite and usb_f_fs (and a USB device controller); use --listen tcp: or udp: here"))

// FunctionFS magic numbers and flags (<linux/usb/functionfs.h>).
const (
	descriptorsMagicV2 = 3
	stringsMagic       = 2
	hasFSDesc          = 1
	hasHSDesc          = 2
	hasSSDesc          = 4
)

// FunctionFS ep0 event types.
const (
	evBind    = 0
	evUnbind  = 1
	evEnable  = 2
	evDisable = 3
	evSetup   = 4
	eventSize = 12 // struct usb_functionfs_event: 8-byte setup request, type, 3 bytes padding
)

// descriptors returns the v2 descriptor block: for full, high and super speed, one interface ff/42/03
// with a bulk OUT (ep1) and a bulk IN (ep2) endpoint.
func descriptors() []byte {
	iface := []byte{9, 4, 0, 0, 2, 0xff, 0x42, 0x03, 1}
	ep := func(addr byte, mps uint16) []byte {
		return []byte{7, 5, addr, 2, byte(mps), byte(mps >> 8), 0}
	}
	ssComp := []byte{6, 0x30, 15, 0, 0, 0}
	var body bytes.Buffer
	for _, mps := range []uint16{64, 512} {
		body.Write(iface)
		body.Write(ep(0x01, mps))
		body.Write(ep(0x82, mps))
	}
	body.Write(iface)
	body.Write(ep(0x01, 1024))
	body.Write(ssComp)
	body.Write(ep(0x82, 1024))
	body.Write(ssComp)
	var b bytes.Buffer
	le := binary.LittleEndian
	for _, v := range []uint32{descriptorsMagicV2, uint32(24 + body.Len()), hasFSDesc | hasHSDesc | hasSSDesc, 3, 3, 5} {
		b.Write(le.AppendUint32(nil, v))
	}
	b.Write(body.Bytes())
	return b.Bytes()
}

// stringsBlock returns the FunctionFS strings: the interface's name, US English.
func stringsBlock() []byte {
	str := append([]byte("fastboot"), 0)
	le := binary.LittleEndian
	var b []byte
	b = le.AppendUint32(b, stringsMagic)
	b = le.AppendUint32(b, uint32(16+2+len(str)))
	b = le.AppendUint32(b, 1) // strings
	b = le.AppendUint32(b, 1) // languages
	b = le.AppendUint16(b, 0x0409)
	return append(b, str...)
}

// event is one ep0 event.
type event struct {
	Type        byte
	RequestType byte // of a SETUP
	Request     byte
	Length      uint16
}

func parseEvents(b []byte) []event {
	var out []event
	for len(b) >= eventSize {
		e := event{Type: b[8], RequestType: b[0], Request: b[1], Length: binary.LittleEndian.Uint16(b[6:8])}
		out = append(out, e)
		b = b[eventSize:]
	}
	return out
}
