//go:build !linux && !windows

package usb

import "time"

// List asks platform-tools' fastboot (this build has no USB access of its own here).
func List() ([]DeviceInfo, error) { return listWithFastboot() }

// Device is not available on this system.
type Device struct{ Info DeviceInfo }

// Open is not available on this system.
func Open(serial string) (*Device, error) { return nil, ErrUnsupported }

// OpenInfo is not available on this system.
func OpenInfo(info DeviceInfo) (*Device, error) { return nil, ErrUnsupported }

func (d *Device) Read(p []byte) (int, error)    { return 0, ErrUnsupported }
func (d *Device) Write(p []byte) (int, error)   { return 0, ErrUnsupported }
func (d *Device) SetDeadline(t time.Time) error { return ErrUnsupported }
func (d *Device) Close() error                  { return nil }

// MemoryMB is a Linux usbfs setting.
func MemoryMB() (int, error) { return 0, ErrUnsupported }
