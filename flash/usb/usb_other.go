//go:build !linux && !windows

package usb

import (
	"context"
	"os"
	"os/exec"
	"time"
)

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
