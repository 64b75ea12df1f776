//go:build linux

package usb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/romforge/romforge/internal/failure"
)

// SysfsRoot is where List looks for USB devices.
var SysfsRoot = "/sys/bus/usb/devices"

// MemoryLimitPath holds usbcore's budget for usbfs buffers, shared by every program using usbfs.
var MemoryLimitPath = "/sys/module/usbcore/parameters/usbfs_memory_mb"

// Transfer sizing. usbfs copies each URB through a kernel buffer charged to the global usbfs_memory_mb
// budget (16 MiB by default for all programs and phones together), so a device keeps at most
// maxInflight × xfer bytes in flight and halves xfer when the kernel answers ENOMEM.
const (
	defaultTransfer = 256 << 10
	minTransfer     = 16 << 10
	maxInflight     = 4
)

// List returns the fastboot devices connected over USB.
func List() ([]DeviceInfo, error) {
	if _, err := os.Stat(SysfsRoot); errors.Is(err, os.ErrNotExist) {
		return nil, nil // no USB bus at all (containers)
	}
	return ListSysfs(SysfsRoot)
}

// MemoryMB reads usbcore's usbfs_memory_mb (0 = no limit).
func MemoryMB() (int, error) {
	b, err := os.ReadFile(MemoryLimitPath)
	if err != nil {
		return 0, fmt.Errorf("usb: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("usb: %s: unexpected content %q", MemoryLimitPath, strings.TrimSpace(string(b)))
	}
	return n, nil
}

// usbfs is what a Device needs from the kernel: ioctls on the open /dev/bus/usb node and a wait for
// completed URBs. Tests put a model of the kernel's behaviour in its place.
type usbfs interface {
	ioctl(req uintptr, arg unsafe.Pointer) error
	// wait returns once a submitted URB may have completed, wake was called, or d passed (d < 0: no
	// limit). Spurious returns are allowed.
	wait(d time.Duration) error
	wake()
	close() error
}

// nodeSys is the real usbfs: the device node and an eventfd that interrupts poll.
type nodeSys struct{ fd, efd int }

func (s *nodeSys) ioctl(req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(s.fd), req, uintptr(arg))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

func (s *nodeSys) wait(d time.Duration) error {
	ms := -1
	if d >= 0 {
		ms = int(min((d+time.Millisecond-1)/time.Millisecond, 1<<30))
	}
	// usbfs reports a reapable URB as writable, a gone device as POLLHUP/POLLERR.
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLOUT}, {Fd: int32(s.efd), Events: unix.POLLIN}}
	_, err := unix.Poll(fds, ms)
	if err == unix.EINTR {
		return nil
	}
	if fds[1].Revents&unix.POLLIN != 0 {
		var b [8]byte
		unix.Read(s.efd, b[:])
	}
	return err
}

func (s *nodeSys) wake() {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], 1)
	unix.Write(s.efd, b[:])
}

func (s *nodeSys) close() error {
	unix.Close(s.efd)
	return unix.Close(s.fd)
}

// Device is an open fastboot interface; it is a fastboot transport (one Write = one message).
// Transfers are asynchronous URBs, so SetDeadline and Close interrupt one that is running (a canceled
// context stops a flash at once instead of after the transfer's timeout).
type Device struct {
	Info DeviceInfo
	sys  usbfs

	xferMu sync.Mutex // one transfer at a time; Close waits for it
	xfer   int        // current URB size, halved on ENOMEM

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
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("usb: eventfd: %w", err))
	}
	return openSys(info, &nodeSys{fd: fd, efd: efd})
}

func openSys(info DeviceInfo, sys usbfs) (*Device, error) {
	d := &Device{Info: info, sys: sys, xfer: defaultTransfer}
	if err := d.claim(); err != nil {
		sys.close()
		return nil, err
	}
	return d, nil
}

func cstr(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// claim takes the interface. A kernel driver holding it is detached, but never usbfs itself: that is
// another program (fastboot, adb, a second romforge) in the middle of its own transfers.
func (d *Device) claim() error {
	ifno := uint32(d.Info.Interface)
	err := d.sys.ioctl(usbdevfsClaimInterface, unsafe.Pointer(&ifno))
	if errors.Is(err, unix.EBUSY) {
		// Detach and claim in one step, atomically, unless the holder is usbfs.
		dc := disconnectClaim{Interface: ifno, Flags: disconnectClaimExceptDriver}
		copy(dc.Driver[:], "usbfs")
		err = d.sys.ioctl(usbdevfsDisconnectClaim, unsafe.Pointer(&dc))
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
			// Kernels before 3.15: ask who holds it, detach only a kernel driver.
			err = unix.EBUSY
			gd := getDriver{Interface: ifno}
			if d.sys.ioctl(usbdevfsGetDriver, unsafe.Pointer(&gd)) == nil && cstr(gd.Driver[:]) != "usbfs" {
				cmd := usbIoctl{Ifno: int32(ifno), IoctlCode: int32(usbdevfsDisconnect)}
				d.sys.ioctl(usbdevfsIoctl, unsafe.Pointer(&cmd))
				err = d.sys.ioctl(usbdevfsClaimInterface, unsafe.Pointer(&ifno))
			}
		}
	}
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return failure.Kinded(failure.ErrIO, fmt.Errorf("usb: interface %d of %s is in use by another program (another fastboot, an adb server or a second romforge): let it finish or stop it, then retry: %w", ifno, d.Info.Serial, err))
		}
		return d.mapErr("claiming the fastboot interface", err)
	}
	return nil
}

// errNoMemory says usbfs's shared buffer budget is exhausted even for the smallest transfer.
var errNoMemory = errors.New("the kernel's usbfs buffer budget is used up (usbcore usbfs_memory_mb, 16 MiB by default, shared by every USB program and phone): raise it with 'echo 256 | sudo tee " + "/sys/module/usbcore/parameters/usbfs_memory_mb' or flash fewer phones at once")

func (d *Device) mapErr(what string, err error) error {
	switch {
	case errors.Is(err, unix.ENODEV), errors.Is(err, unix.ESHUTDOWN), errors.Is(err, unix.ENOENT),
		// An unplug in the middle of a transfer often ends it with a low-level bus error first.
		errors.Is(err, unix.EPROTO), errors.Is(err, unix.EILSEQ), errors.Is(err, unix.ETIME):
		return fmt.Errorf("usb: %s (%s): %w", what, d.Info.Serial, ErrDisconnected)
	case errors.Is(err, unix.ETIMEDOUT):
		return fmt.Errorf("usb: %s: %w", what, os.ErrDeadlineExceeded)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return failure.Kinded(failure.ErrIO, fmt.Errorf("usb: %s: %s: %w", what, UdevHint, err))
	case errors.Is(err, unix.ENOMEM):
		return failure.Kinded(failure.ErrIO, fmt.Errorf("usb: %s (%s): %w (%w)", what, d.Info.Serial, errNoMemory, err))
	}
	return failure.Kinded(failure.ErrIO, fmt.Errorf("usb: %s (%s): %w", what, d.Info.Serial, err))
}

// waitTime is how long a transfer may still wait: -1 without a deadline; an error once the deadline
// passed or the device was closed.
func (d *Device) waitTime() (time.Duration, error) {
	d.mu.Lock()
	dl, closed := d.deadline, d.closed
	d.mu.Unlock()
	if closed {
		return 0, os.ErrClosed
	}
	if dl.IsZero() {
		return -1, nil
	}
	left := time.Until(dl)
	if left <= 0 {
		return 0, os.ErrDeadlineExceeded
	}
	return left, nil
}

// reap waits for one of the submitted URBs to complete.
func (d *Device) reap() (*urb, error) {
	for {
		var got unsafe.Pointer
		err := d.sys.ioctl(usbdevfsReapURBNDelay, unsafe.Pointer(&got))
		if err == nil {
			return (*urb)(got), nil
		}
		if !errors.Is(err, unix.EAGAIN) {
			return nil, err
		}
		tmo, err := d.waitTime()
		if err != nil {
			return nil, err
		}
		if err := d.sys.wait(tmo); err != nil {
			return nil, err
		}
	}
}

// abandon discards the URBs still in flight and reaps them, so the kernel no longer refers to the
// caller's buffers when the transfer returns.
func (d *Device) abandon(q []*urb) {
	for _, u := range q {
		d.sys.ioctl(usbdevfsDiscardURB, unsafe.Pointer(u)) // EINVAL: it completed already
	}
	left := len(q)
	stop := time.Now().Add(5 * time.Second)
	for left > 0 && time.Now().Before(stop) {
		var got unsafe.Pointer
		err := d.sys.ioctl(usbdevfsReapURBNDelay, unsafe.Pointer(&got))
		switch {
		case err == nil:
			left--
		case errors.Is(err, unix.EAGAIN):
			d.sys.wait(50 * time.Millisecond)
		default:
			return // the device is gone: the kernel dropped its URBs
		}
	}
}

// vanished reports whether the device leaves the bus within a moment: a device that stops taking data
// in the middle of a transfer is usually going away (cable pulled, phone rebooting), and the kernel
// notices the disconnect shortly after the transfer ended.
func (d *Device) vanished() bool {
	stop := time.Now().Add(1500 * time.Millisecond)
	for {
		var ci connectInfo
		err := d.sys.ioctl(usbdevfsConnectInfo, unsafe.Pointer(&ci))
		if errors.Is(err, unix.ENODEV) {
			return true
		}
		if time.Now().After(stop) {
			return false
		}
		d.sys.wait(50 * time.Millisecond)
	}
}

// status turns a reaped URB's status into an error, clearing a stalled endpoint.
func (d *Device) status(what string, u *urb) error {
	if u.Status == 0 {
		return nil
	}
	errno := unix.Errno(-u.Status)
	if errno == unix.EPIPE {
		ep := uint32(u.Endpoint)
		if err := d.sys.ioctl(usbdevfsClearHalt, unsafe.Pointer(&ep)); err != nil {
			return fmt.Errorf("usb: %s: endpoint %#02x stalled and clearing the halt failed: %w", what, ep, d.mapErr("clear halt", err))
		}
		return fmt.Errorf("usb: %s: endpoint %#02x: %w", what, ep, ErrStalled)
	}
	if errno == unix.EOVERFLOW {
		return failure.Kinded(failure.ErrIO, fmt.Errorf("usb: %s: the device sent more data than asked for (babble): %w", what, errno))
	}
	if errno == unix.ECONNRESET {
		// Discarded by us only when a transfer is abandoned; anything else is the device going away.
		return fmt.Errorf("usb: %s (%s): %w", what, d.Info.Serial, ErrDisconnected)
	}
	return d.mapErr(what, errno)
}

// submit queues one bulk URB for buf on ep; on ENOMEM with nothing else in flight it retries with
// smaller pieces, returning how many bytes the URB covers.
func (d *Device) submit(pin *runtime.Pinner, ep uint8, buf []byte, inflight int) (*urb, error) {
	for {
		k := min(len(buf), d.xfer)
		u := &urb{Type: urbTypeBulk, Endpoint: ep, BufferLength: int32(k)}
		if k > 0 {
			pin.Pin(&buf[0])
			u.Buffer = unsafe.Pointer(&buf[0])
		}
		pin.Pin(u)
		err := d.sys.ioctl(usbdevfsSubmitURB, unsafe.Pointer(u))
		if err == nil {
			return u, nil
		}
		if errors.Is(err, unix.ENOMEM) && inflight == 0 && d.xfer > minTransfer && k > minTransfer {
			d.xfer /= 2
			continue
		}
		return nil, err
	}
}

// Write sends p as one message in bulk URBs, several in flight.
func (d *Device) Write(p []byte) (int, error) {
	d.xferMu.Lock()
	defer d.xferMu.Unlock()
	if _, err := d.waitTime(); err != nil {
		return 0, err
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	var q []*urb // in flight, oldest first
	sent, off := 0, 0
	for sent < len(p) {
		for off < len(p) && len(q) < maxInflight {
			u, err := d.submit(&pin, d.Info.EndpointOut, p[off:], len(q))
			if errors.Is(err, unix.ENOMEM) && len(q) > 0 {
				break // wait for memory to come back from the URBs in flight
			}
			if err != nil {
				d.abandon(q)
				return sent, d.mapErr("bulk write", err)
			}
			q = append(q, u)
			off += int(u.BufferLength)
		}
		u, err := d.reap()
		if err != nil {
			d.abandon(q)
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed) {
				return sent, err
			}
			return sent, d.mapErr("bulk write", err)
		}
		// Bulk URBs of one endpoint complete in order.
		if len(q) == 0 || u != q[0] {
			d.abandon(q)
			return sent, failure.Kinded(failure.ErrIO, errors.New("usb: bulk write: the kernel returned a transfer out of order"))
		}
		q = q[1:]
		if err := d.status("bulk write", u); err != nil {
			d.abandon(q)
			return sent, err
		}
		sent += int(u.ActualLength)
		if u.ActualLength != u.BufferLength {
			d.abandon(q)
			if d.vanished() {
				return sent, fmt.Errorf("usb: bulk write (%s): the device stopped taking data after %d bytes: %w", d.Info.Serial, sent, ErrDisconnected)
			}
			return sent, failure.Kinded(failure.ErrIO, fmt.Errorf("usb: bulk write: the device took %d of %d bytes", u.ActualLength, u.BufferLength))
		}
	}
	return sent, nil
}

// Read receives one transfer (a reply, or a piece of upload data) of at most len(p) bytes.
func (d *Device) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	d.xferMu.Lock()
	defer d.xferMu.Unlock()
	var pin runtime.Pinner
	defer pin.Unpin()
	for {
		if _, err := d.waitTime(); err != nil {
			return 0, err
		}
		u, err := d.submit(&pin, d.Info.EndpointIn, p, 0)
		if err != nil {
			return 0, d.mapErr("bulk read", err)
		}
		r, err := d.reap()
		if err != nil {
			d.abandon([]*urb{u})
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed) {
				return 0, err
			}
			return 0, d.mapErr("bulk read", err)
		}
		if r != u {
			return 0, failure.Kinded(failure.ErrIO, errors.New("usb: bulk read: the kernel returned an unknown transfer"))
		}
		if err := d.status("bulk read", u); err != nil {
			return 0, err
		}
		if n := int(u.ActualLength); n > 0 {
			if n > len(p) {
				return 0, failure.Kinded(failure.ErrIO, fmt.Errorf("usb: bulk read: %d bytes reported for a %d-byte buffer", n, len(p)))
			}
			return n, nil
		}
		// A zero-length packet ends nothing in fastboot: wait for the real message.
	}
}

// SetDeadline bounds the running and later transfers; a past deadline interrupts the running one.
func (d *Device) SetDeadline(t time.Time) error {
	d.mu.Lock()
	d.deadline = t
	d.mu.Unlock()
	d.sys.wake()
	return nil
}

// Close interrupts a running transfer, releases the interface and closes the device node.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.sys.wake()
	d.xferMu.Lock() // the running transfer sees closed and returns
	defer d.xferMu.Unlock()
	ifno := uint32(d.Info.Interface)
	d.sys.ioctl(usbdevfsReleaseInterface, unsafe.Pointer(&ifno))
	return d.sys.close()
}
