//go:build linux

package usb

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/romforge/romforge/internal/failure"
)

func TestOpenMissingNode(t *testing.T) {
	// Bus 999 does not exist: the node is missing as after an unplug.
	_, err := OpenInfo(DeviceInfo{Serial: "gone", Bus: 999, Address: 999, EndpointIn: 0x81, EndpointOut: 0x01})
	if !errors.Is(err, ErrDisconnected) || !errors.Is(err, failure.ErrIO) {
		t.Fatalf("open of a missing node: %v", err)
	}
}

func TestListUsesSysfsRoot(t *testing.T) {
	old := SysfsRoot
	defer func() { SysfsRoot = old }()
	SysfsRoot = fakeSysfs(t, merge(device("1-1", "18d1", "d00d", "s1", "1", "2"),
		iface("1-1:1.0", "ff", "42", "03", "00", [3]string{"81", "02", "0200"}, [3]string{"01", "02", "0200"})))
	list, err := List()
	if err != nil || len(list) != 1 || list[0].Serial != "s1" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if _, err := Open("other"); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("Open(other): %v", err)
	}
}

// Defect 1: a second program must not take the interface away from one that holds it (the kernel
// driver holding it is then "usbfs"); a real kernel driver is detached.
func TestClaimLeavesAnotherProgramAlone(t *testing.T) {
	for _, old := range []bool{false, true} {
		k := newFake()
		k.holder, k.oldKernel = "usbfs", old
		_, err := openSys(testInfo, k)
		if err == nil || !strings.Contains(err.Error(), "in use by another program") || !errors.Is(err, failure.ErrIO) {
			t.Errorf("old kernel %v: open while another program holds the interface: %v", old, err)
		}
		if k.stolen || k.holder != "usbfs" {
			t.Errorf("old kernel %v: the other program lost its claim (ops %v)", old, k.ops)
		}

		k = newFake()
		k.holder, k.oldKernel = "usb-storage", old
		d, err := openSys(testInfo, k)
		if err != nil || k.holder != "me" {
			t.Fatalf("old kernel %v: a kernel driver was not detached: %v (ops %v)", old, err, k.ops)
		}
		d.Close()
		if k.holder != "" {
			t.Errorf("Close did not release the interface (ops %v)", k.ops)
		}
	}
}

// Defect 2: a deadline set while a transfer waits (what the fastboot client does when its context is
// canceled) ends it at once, and the URB is discarded and reaped before Read returns.
func TestDeadlineInterruptsTransfers(t *testing.T) {
	k := newFake()
	d, err := openSys(testInfo, k)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.SetDeadline(time.Now().Add(time.Hour))
	time.AfterFunc(50*time.Millisecond, func() { d.SetDeadline(time.Unix(1, 0)) })
	start := time.Now()
	_, err = d.Read(make([]byte, 64))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read: %v", err)
	}
	if dt := time.Since(start); dt > 2*time.Second {
		t.Fatalf("Read returned %v after the cancellation", dt)
	}
	if !k.has("discard") || k.inFlight() != 0 {
		t.Fatalf("the URB was not discarded and reaped (ops %v, %d left)", k.ops, k.inFlight())
	}

	// A write to a device that stopped reading.
	k.mu.Lock()
	k.outBlock = true
	k.mu.Unlock()
	d.SetDeadline(time.Now().Add(time.Hour))
	time.AfterFunc(50*time.Millisecond, func() { d.SetDeadline(time.Unix(1, 0)) })
	if _, err := d.Write(make([]byte, 3<<20)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write: %v", err)
	}
	if k.inFlight() != 0 {
		t.Fatalf("%d URBs left in flight after an interrupted write", k.inFlight())
	}

	// Close from another goroutine (the emulator's and the CLI's way out) ends a waiting Read too.
	d.SetDeadline(time.Time{})
	time.AfterFunc(50*time.Millisecond, func() { d.Close() })
	if _, err := d.Read(make([]byte, 64)); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read during Close: %v", err)
	}
}

// Defect 3: a stall is reported as a stall (not a closed connection), the halt is cleared, and the
// next transfer works.
func TestStallIsClearedAndReported(t *testing.T) {
	k := newFake()
	d, err := openSys(testInfo, k)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	k.halted = true
	_, err = d.Read(make([]byte, 64))
	if !errors.Is(err, ErrStalled) || !errors.Is(err, failure.ErrIO) || errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Read of a stalled endpoint: %v", err)
	}
	if len(k.clearedEPs) != 1 || k.clearedEPs[0] != 0x81 {
		t.Fatalf("cleared endpoints %v, want [0x81]", k.clearedEPs)
	}
	k.reply("OKAYusbvm")
	buf := make([]byte, 64)
	n, err := d.Read(buf)
	if err != nil || string(buf[:n]) != "OKAYusbvm" {
		t.Fatalf("Read after the halt was cleared: %q %v", buf[:n], err)
	}
}

// Defect 4: the bus errors an unplug produces mid-transfer mean "disconnected".
func TestUnplugErrorsAreDisconnects(t *testing.T) {
	for _, errno := range []unix.Errno{unix.EPROTO, unix.EILSEQ, unix.ESHUTDOWN, unix.ENODEV, unix.ENOENT} {
		k := newFake()
		d, err := openSys(testInfo, k)
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(20*time.Millisecond, func() { k.unplug(errno) })
		_, err = d.Read(make([]byte, 64))
		if !errors.Is(err, ErrDisconnected) {
			t.Errorf("%v: %v", errno, err)
		}
		if _, err := d.Write([]byte("getvar:product")); !errors.Is(err, ErrDisconnected) {
			t.Errorf("%v: write after unplug: %v", errno, err)
		}
		d.Close()
	}
}

// A device that stops taking data in the middle of a write and then leaves the bus (what a cable pull
// looks like through dummy_hcd) is a disconnect, not a short write.
func TestShortWriteThenGoneIsDisconnect(t *testing.T) {
	for _, delay := range []time.Duration{0, 300 * time.Millisecond} {
		k := newFake()
		k.outShort, k.goneDelay = 66816, delay
		d, err := openSys(testInfo, k)
		if err != nil {
			t.Fatal(err)
		}
		n, err := d.Write(make([]byte, 1<<20))
		if !errors.Is(err, ErrDisconnected) || n > 66816 {
			t.Errorf("gone after %v: wrote %d: %v", delay, n, err)
		}
		d.Close()
	}
}

// Defect 5: with usbfs's buffer budget nearly used up, transfers get smaller instead of failing, and
// the data arrives intact; below the smallest transfer the error names usbfs_memory_mb.
func TestNoMemoryFallsBackToSmallerTransfers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 40; i++ {
		k := newFake()
		k.memLimit = minTransfer + rng.IntN(2<<20)
		d, err := openSys(testInfo, k)
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, 1+rng.IntN(3<<20))
		fill(rng, data)
		n, err := d.Write(data)
		if err != nil || n != len(data) || !bytes.Equal(k.out, data) {
			t.Fatalf("limit %d, %d bytes: wrote %d: %v (received %d bytes, equal %v)", k.memLimit, len(data), n, err, len(k.out), bytes.Equal(k.out, data))
		}
		if k.maxURB > k.memLimit {
			t.Fatalf("an URB of %d bytes went past a budget of %d", k.maxURB, k.memLimit)
		}
		// Reads fall back too.
		msg := bytes.Repeat([]byte{'x'}, 1+rng.IntN(k.memLimit))
		k.reply(string(msg))
		buf := make([]byte, 4<<20)
		got, err := d.Read(buf)
		if err != nil || got == 0 || !bytes.Equal(buf[:got], msg[:got]) {
			t.Fatalf("read: %d %v", got, err)
		}
		d.Close()
	}

	k := newFake()
	k.memLimit = minTransfer - 1
	d, err := openSys(testInfo, k)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = d.Write(make([]byte, 1<<20))
	if err == nil || !strings.Contains(err.Error(), "usbfs_memory_mb") || !errors.Is(err, failure.ErrIO) {
		t.Fatalf("write with no usbfs memory left: %v", err)
	}
}

// Writes keep several URBs in flight and still deliver the bytes in order.
func TestWritePipelinesInOrder(t *testing.T) {
	k := newFake()
	d, err := openSys(testInfo, k)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	var want []byte
	for i := 0; i < 20; i++ {
		p := make([]byte, rng.IntN(2<<20))
		fill(rng, p)
		if n, err := d.Write(p); err != nil || n != len(p) {
			t.Fatalf("write %d bytes: %d %v", len(p), n, err)
		}
		want = append(want, p...)
	}
	if !bytes.Equal(k.out, want) {
		t.Fatalf("received %d bytes, not the %d sent in order", len(k.out), len(want))
	}
	if k.maxURB > defaultTransfer {
		t.Fatalf("URB of %d bytes", k.maxURB)
	}
}

// The new structs and ioctl numbers equal the kernel headers' on 64-bit Linux.
func TestAsyncIoctlNumbers(t *testing.T) {
	if sizeofPtr != 8 {
		t.Skip("constants below are for 64-bit platforms")
	}
	if s := unsafe.Sizeof(urb{}); s != 56 {
		t.Errorf("sizeof(struct usbdevfs_urb) = %d, want 56", s)
	}
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"USBDEVFS_SUBMITURB", usbdevfsSubmitURB, 0x8038550a},
		{"USBDEVFS_DISCARDURB", usbdevfsDiscardURB, 0x550b},
		{"USBDEVFS_REAPURBNDELAY", usbdevfsReapURBNDelay, 0x4008550d},
		{"USBDEVFS_GETDRIVER", usbdevfsGetDriver, 0x41045508},
		{"USBDEVFS_CONNECTINFO", usbdevfsConnectInfo, 0x40085511},
		{"USBDEVFS_DISCONNECT_CLAIM", usbdevfsDisconnectClaim, 0x8108551b},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestMemoryMB(t *testing.T) {
	old := MemoryLimitPath
	defer func() { MemoryLimitPath = old }()
	dir := t.TempDir()
	MemoryLimitPath = filepath.Join(dir, "usbfs_memory_mb")
	os.WriteFile(MemoryLimitPath, []byte("16\n"), 0o644)
	if n, err := MemoryMB(); n != 16 || err != nil {
		t.Fatalf("MemoryMB = %d, %v", n, err)
	}
	os.WriteFile(MemoryLimitPath, []byte("lots\n"), 0o644)
	if _, err := MemoryMB(); err == nil {
		t.Fatal("garbage accepted")
	}
}

func fill(rng *rand.Rand, p []byte) {
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	rand.NewChaCha8(seed).Read(p)
}
