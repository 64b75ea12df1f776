package usb

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"testing"
	"time"
)

// fakePipes models WinUSB: a pending read blocks until data, an abort, a stall or an unplug.
type fakePipes struct {
	mu      sync.Mutex
	cond    *sync.Cond
	in      [][]byte
	out     []byte
	aborted map[uint8]int
	stalled bool
	gone    bool
	resets  []uint8
}

func newFakePipes() *fakePipes {
	f := &fakePipes{aborted: map[uint8]int{}}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *fakePipes) readPipe(pipe uint8, p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gen := f.aborted[pipe]
	for {
		switch {
		case f.gone:
			return 0, errPipeGone
		case f.stalled:
			return 0, errPipeStalled
		case f.aborted[pipe] != gen:
			return 0, errPipeAborted
		case len(f.in) > 0:
			n := copy(p, f.in[0])
			f.in = f.in[1:]
			return n, nil
		}
		f.cond.Wait()
	}
}

func (f *fakePipes) writePipe(pipe uint8, p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone {
		return 0, errPipeGone
	}
	f.out = append(f.out, p...)
	return len(p), nil
}

func (f *fakePipes) abortPipe(pipe uint8) error {
	f.mu.Lock()
	f.aborted[pipe]++
	f.cond.Broadcast()
	f.mu.Unlock()
	return nil
}

func (f *fakePipes) resetPipe(pipe uint8) error {
	f.mu.Lock()
	f.resets = append(f.resets, pipe)
	f.stalled = false
	f.mu.Unlock()
	return nil
}

func (f *fakePipes) close() error { return nil }

func (f *fakePipes) set(fn func()) {
	f.mu.Lock()
	fn()
	f.cond.Broadcast()
	f.mu.Unlock()
}

func TestPipeDevice(t *testing.T) {
	f := newFakePipes()
	d := newPipeDevice(testPipeInfo, f)
	data := bytes.Repeat([]byte("0123456789abcdef"), 200000) // 3.2 MB: several transfers
	if n, err := d.Write(data); err != nil || n != len(data) || !bytes.Equal(f.out, data) {
		t.Fatalf("write: %d %v", n, err)
	}
	f.set(func() { f.in = append(f.in, []byte("OKAY")) })
	buf := make([]byte, 64)
	if n, err := d.Read(buf); err != nil || string(buf[:n]) != "OKAY" {
		t.Fatalf("read: %q %v", buf[:n], err)
	}

	// A deadline aborts a read the device never answers.
	d.SetDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	if _, err := d.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("read past the deadline: %v after %v", err, time.Since(start))
	}
	d.SetDeadline(time.Time{})

	// A stall is cleared and reported as such.
	f.set(func() { f.stalled = true })
	if _, err := d.Read(buf); !errors.Is(err, ErrStalled) || len(f.resets) != 1 || f.resets[0] != 0x81 {
		t.Fatalf("stall: %v, resets %v", err, f.resets)
	}
	f.set(func() { f.in = append(f.in, []byte("OKAYagain")) })
	if n, err := d.Read(buf); err != nil || string(buf[:n]) != "OKAYagain" {
		t.Fatalf("read after the stall: %q %v", buf[:n], err)
	}

	// Unplugged.
	f.set(func() { f.gone = true })
	if _, err := d.Write([]byte("getvar:product")); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("write after unplug: %v", err)
	}

	// Close from another goroutine ends a waiting read.
	f2 := newFakePipes()
	d2 := newPipeDevice(testPipeInfo, f2)
	time.AfterFunc(50*time.Millisecond, func() { d2.Close() })
	if _, err := d2.Read(buf); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("read during close: %v", err)
	}
}

var testPipeInfo = DeviceInfo{Serial: "W1", EndpointIn: 0x81, EndpointOut: 0x02}
