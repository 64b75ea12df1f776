// Package usb finds fastboot devices on USB and talks to them through Linux usbfs in pure Go: devices
// are enumerated from sysfs (/sys/bus/usb/devices: vendor, product, serial, bus and address, and the
// interface with class 0xff, subclass 0x42, protocol 0x03 with its bulk endpoints), opened at
// /dev/bus/usb/BBB/DDD, claimed (detaching a kernel driver when one holds it) and driven with bulk
// transfers. On other systems List and Open return ErrUnsupported: use tcp:/udp: serials or a fastboot
// binary there.
package usb
