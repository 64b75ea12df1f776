//go:build linux

package usb

import (
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fakeKernel models usbfs for one device: interface ownership, asynchronous bulk URBs on one OUT and one
// IN endpoint, halts, the shared buffer budget and unplugging, as the kernel behaves.
type fakeKernel struct {
	mu         sync.Mutex
	holder     string // "": free; "me": this Device; "usbfs": another program; else a kernel driver
	stolen     bool   // another program's claim was taken away
	oldKernel  bool   // no USBDEVFS_DISCONNECT_CLAIM
	ops        []string
	memLimit   int // bytes of URB buffers in flight, 0 = unlimited
	inUse      int
	maxURB     int
	pending    []*urb
	done       []*urb
	out        []byte
	in         [][]byte
	outBlock   bool // OUT URBs stay pending (a device that stopped reading)
	outShort   int  // > 0: the next OUT URB completes after this many bytes, and the device leaves the bus
	goneDelay  time.Duration
	halted     bool // the IN endpoint is halted
	gone       bool
	clearedEPs []uint32
	notify     chan struct{}
	closed     bool
}

func newFake() *fakeKernel { return &fakeKernel{notify: make(chan struct{}, 1)} }

func (k *fakeKernel) signal() {
	select {
	case k.notify <- struct{}{}:
	default:
	}
}

func urbData(u *urb) []byte {
	if u.BufferLength == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(u.Buffer), u.BufferLength)
}

// progress completes what can complete, in order per endpoint; called with mu held.
func (k *fakeKernel) progress() {
	var still []*urb
	blockedIn, blockedOut := false, false
	for _, u := range k.pending {
		isIn := u.Endpoint&0x80 != 0
		switch {
		case isIn && !blockedIn && k.halted:
			u.Status = -int32(unix.EPIPE)
		case isIn && !blockedIn && len(k.in) > 0:
			msg := k.in[0]
			n := copy(urbData(u), msg)
			u.ActualLength = int32(n)
			if n < len(msg) {
				k.in[0] = msg[n:]
			} else {
				k.in = k.in[1:]
			}
		case !isIn && !blockedOut && !k.outBlock && k.outShort > 0:
			n := min(k.outShort, int(u.BufferLength))
			k.out = append(k.out, urbData(u)[:n]...)
			u.ActualLength = int32(n)
			k.outShort = 0
			time.AfterFunc(k.goneDelay, func() { k.unplug(unix.ESHUTDOWN) })
		case !isIn && !blockedOut && !k.outBlock:
			k.out = append(k.out, urbData(u)...)
			u.ActualLength = u.BufferLength
		default:
			if isIn {
				blockedIn = true
			} else {
				blockedOut = true
			}
			still = append(still, u)
			continue
		}
		k.done = append(k.done, u)
	}
	k.pending = still
	k.signal()
}

func (k *fakeKernel) ioctl(req uintptr, arg unsafe.Pointer) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return unix.EBADF
	}
	switch req {
	case usbdevfsClaimInterface:
		k.ops = append(k.ops, "claim")
		if k.holder != "" && k.holder != "me" {
			return unix.EBUSY
		}
		k.holder = "me"
	case usbdevfsDisconnectClaim:
		k.ops = append(k.ops, "disconnect-claim")
		if k.oldKernel {
			return unix.ENOTTY
		}
		dc := (*disconnectClaim)(arg)
		if dc.Flags&disconnectClaimExceptDriver != 0 && k.holder == cstr(dc.Driver[:]) {
			return unix.EBUSY
		}
		if k.holder == "usbfs" {
			k.stolen = true
		}
		k.holder = "me"
	case usbdevfsGetDriver:
		k.ops = append(k.ops, "getdriver")
		if k.holder == "" {
			return unix.ENODATA
		}
		copy((*getDriver)(arg).Driver[:], k.holder)
	case usbdevfsIoctl:
		c := (*usbIoctl)(arg)
		if uintptr(c.IoctlCode) == usbdevfsDisconnect {
			k.ops = append(k.ops, "disconnect")
			if k.holder == "usbfs" {
				k.stolen = true
			}
			k.holder = ""
		}
	case usbdevfsReleaseInterface:
		k.ops = append(k.ops, "release")
		if k.holder == "me" {
			k.holder = ""
		}
	case usbdevfsSubmitURB:
		u := (*urb)(arg)
		if k.gone {
			return unix.ENODEV
		}
		if k.memLimit > 0 && k.inUse+int(u.BufferLength) > k.memLimit {
			return unix.ENOMEM
		}
		k.inUse += int(u.BufferLength)
		k.maxURB = max(k.maxURB, int(u.BufferLength))
		k.pending = append(k.pending, u)
		k.progress()
	case usbdevfsDiscardURB:
		k.ops = append(k.ops, "discard")
		for i, u := range k.pending {
			if unsafe.Pointer(u) == arg {
				u.Status = -int32(unix.ECONNRESET)
				k.pending = append(k.pending[:i:i], k.pending[i+1:]...)
				k.done = append(k.done, u)
				k.signal()
				return nil
			}
		}
		return unix.EINVAL
	case usbdevfsReapURBNDelay:
		if len(k.done) == 0 {
			if k.gone {
				return unix.ENODEV
			}
			return unix.EAGAIN
		}
		u := k.done[0]
		k.done = k.done[1:]
		k.inUse -= int(u.BufferLength)
		*(*unsafe.Pointer)(arg) = unsafe.Pointer(u)
	case usbdevfsConnectInfo:
		if k.gone {
			return unix.ENODEV
		}
	case usbdevfsClearHalt:
		ep := *(*uint32)(arg)
		k.ops = append(k.ops, "clear-halt")
		k.clearedEPs = append(k.clearedEPs, ep)
		if ep&0x80 != 0 {
			k.halted = false
		}
	default:
		return unix.ENOTTY
	}
	return nil
}

func (k *fakeKernel) wait(d time.Duration) error {
	if d < 0 {
		d = time.Hour
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-k.notify:
	case <-t.C:
	}
	return nil
}

func (k *fakeKernel) wake() { k.signal() }

func (k *fakeKernel) close() error {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	return nil
}

// reply queues a message the device sends.
func (k *fakeKernel) reply(msg string) {
	k.mu.Lock()
	k.in = append(k.in, []byte(msg))
	k.progress()
	k.mu.Unlock()
}

// unplug ends every URB in flight with status errno, as a cable pull does.
func (k *fakeKernel) unplug(errno unix.Errno) {
	k.mu.Lock()
	k.gone = true
	for _, u := range k.pending {
		u.Status = -int32(errno)
	}
	k.done = append(k.done, k.pending...)
	k.pending = nil
	k.signal()
	k.mu.Unlock()
}

func (k *fakeKernel) inFlight() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.pending) + len(k.done)
}

func (k *fakeKernel) has(op string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, o := range k.ops {
		if o == op {
			return true
		}
	}
	return false
}

var testInfo = DeviceInfo{Serial: "FAKE01", Interface: 0, EndpointIn: 0x81, EndpointOut: 0x02, MaxPacket: 512}
