//go:build linux

package usb

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/romforge/romforge/internal/failure"
)

// SysfsRoot is where List looks for USB devices.
var SysfsRoot = "/sys/bus/usb/devices"

// maxTransfer is the largest single bulk transfer: usbfs copies each one through a kernel buffer.
const maxTransfer = 1 << 20

// List returns the fastboot devices connected over USB.
func List() ([]DeviceInfo, error) {
	if _, err := os.Stat(SysfsRoot); errors.Is(err, os.ErrNotExist) {
		return nil, nil // no USB bus at all (containers)
	}
	return ListSysfs(SysfsRoot)
}

// Device is an open fastboot interface; it is a fastboot transport (one Write = one message).
type Device struct {
	Info DeviceInfo
	fd   int

	mu       sync.Mutex
	deadline time.Time
	closed   bool
}

// Open claims the fastboot interface of the device with this serial ("" → the only one).
func Open(serial string) (*Device, error) {
	list, err := List()
	if err != nil {
		return nil, err
	}
	info, err := pick(list, serial)
	if err != nil {
		return nil, err
	}
	return OpenInfo(info)
}

// OpenInfo opens a device found by List.
func OpenInfo(info DeviceInfo) (*Device, error) {
	fd, err := unix.Open(info.DevPath(), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("usb: %s (%s): %s: %w", info.DevPath(), info.Serial, UdevHint, err))
		}
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("usb: %s: %w", info.DevPath(), ErrDisconnected)
		}
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("usb: open %s: %w", info.DevPath(), err))
	}
	d := &Device{Info: info, fd: fd}
	if err := d.claim(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return d, nil
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if errno != 0 {
		return int(r), errno
	}
	return int(r), nil
}

func (d *Device) claim() error {
	ifno := uint32(d.Info.Interface)
	_, err := ioctl(d.fd, usbdevfsClaimInterface, unsafe.Pointer(&ifno))
	if errors.Is(err, unix.EBUSY) {
		// A kernel driver holds the interface: detach it, then claim.
		cmd := usbIoctl{Ifno: int32(ifno), IoctlCode: int32(usbdevfsDisconnect)}
		ioctl(d.fd, usbdevfsIoctl, unsafe.Pointer(&cmd))
		_, err = ioctl(d.fd, usbdevfsClaimInterface, unsafe.Pointer(&ifno))
	}
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return failure.Kinded(failure.ErrIO, fmt.Errorf("usb: interface %d of %s is in use by another program (another fastboot or adb server?): %w", ifno, d.Info.Serial, err))
		}
		return d.mapErr("claiming the fastboot interface", err)
	}
	return nil
}

func (d *Device) mapErr(what string, err error) error {
	switch {
	case errors.Is(err, unix.ENODEV), errors.Is(err, unix.ESHUTDOWN), errors.Is(err, unix.ENOENT):
		return fmt.Errorf("usb: %s (%s): %w", what, d.Info.Serial, ErrDisconnected)
	case errors.Is(err, unix.ETIMEDOUT):
		return fmt.Errorf("usb: %s: %w", what, os.ErrDeadlineExceeded)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return failure.Kinded(failure.ErrIO, fmt.Errorf("usb: %s: %s: %w", what, UdevHint, err))
	}
	return failure.Kinded(failure.ErrIO, fmt.Errorf("usb: %s (%s): %w", what, d.Info.Serial, err))
}

// timeoutMS turns the deadline into usbfs's per-transfer timeout (0 = wait forever).
func (d *Device) timeoutMS() (uint32, error) {
	d.mu.Lock()
	dl, closed := d.deadline, d.closed
	d.mu.Unlock()
	if closed {
		return 0, os.ErrClosed
	}
	if dl.IsZero() {
		return 0, nil
	}
	left := time.Until(dl)
	if left <= 0 {
		return 0, os.ErrDeadlineExceeded
	}
	ms := left.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	if ms > 1<<31 {
		ms = 1 << 31
	}
	return uint32(ms), nil
}

func (d *Device) bulk(ep uint8, p []byte) (int, error) {
	tmo, err := d.timeoutMS()
	if err != nil {
		return 0, err
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	bt := bulkTransfer{Ep: uint32(ep), Len: uint32(len(p)), Timeout: tmo}
	if len(p) > 0 {
		pin.Pin(&p[0])
		bt.Data = unsafe.Pointer(&p[0])
	}
	for {
		n, err := ioctl(d.fd, usbdevfsBulk, unsafe.Pointer(&bt))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return n, err
	}
}

// Write sends p as one message, in transfers of at most 1 MiB.
func (d *Device) Write(p []byte) (int, error) {
	sent := 0
	for sent < len(p) {
		k := min(len(p)-sent, maxTransfer)
		n, err := d.bulk(d.Info.EndpointOut, p[sent:sent+k])
		if n > 0 {
			sent += n
		}
		if err != nil {
			return sent, d.mapErr("bulk write", err)
		}
		if n <= 0 {
			return sent, d.mapErr("bulk write", unix.EIO)
		}
	}
	return sent, nil
}

// Read receives one transfer (a reply, or a piece of upload data) of at most len(p) bytes.
func (d *Device) Read(p []byte) (int, error) {
	if len(p) > maxTransfer {
		p = p[:maxTransfer]
	}
	for {
		n, err := d.bulk(d.Info.EndpointIn, p)
		if err != nil {
			return 0, d.mapErr("bulk read", err)
		}
		if n > 0 {
			return n, nil
		}
		// A zero-length packet ends nothing in fastboot: wait for the real message.
	}
}

// SetDeadline bounds later transfers (usbfs cannot interrupt one already running; its timeout is
// derived from the deadline when it starts).
func (d *Device) SetDeadline(t time.Time) error {
	d.mu.Lock()
	d.deadline = t
	d.mu.Unlock()
	return nil
}

// Close releases the interface and closes the device node.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	ifno := uint32(d.Info.Interface)
	ioctl(d.fd, usbdevfsReleaseInterface, unsafe.Pointer(&ifno))
	return unix.Close(d.fd)
}
