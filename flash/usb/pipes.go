package usb

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/romforge/romforge/internal/failure"
)

// pipeOps is a USB stack that moves bulk data synchronously per pipe and can abort a pipe's pending
// transfer from another goroutine (WinUSB). Its errors are classified with the sentinels below.
type pipeOps interface {
	readPipe(pipe uint8, p []byte) (int, error)
	writePipe(pipe uint8, p []byte) (int, error)
	abortPipe(pipe uint8) error
	resetPipe(pipe uint8) error // clears a halt
	close() error
}

var (
	errPipeAborted = errors.New("transfer aborted")
	errPipeStalled = errors.New("endpoint stalled")
	errPipeGone    = errors.New("device gone")
)

// pipeDevice is a fastboot transport over pipeOps: deadlines and Close abort the running transfer,
// stalls are cleared and reported, a gone device is ErrDisconnected.
type pipeDevice struct {
	info DeviceInfo
	ops  pipeOps

	xferMu sync.Mutex
	mu     sync.Mutex
	timer  *time.Timer
	dl     time.Time
	closed bool
}

const pipeChunk = 1 << 20

func newPipeDevice(info DeviceInfo, ops pipeOps) *pipeDevice {
	return &pipeDevice{info: info, ops: ops}
}

func (d *pipeDevice) expired() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return os.ErrClosed
	}
	if !d.dl.IsZero() && !time.Now().Before(d.dl) {
		return os.ErrDeadlineExceeded
	}
	return nil
}

func (d *pipeDevice) abortAll() {
	d.ops.abortPipe(d.info.EndpointIn)
	d.ops.abortPipe(d.info.EndpointOut)
}

// SetDeadline arms an abort of the running transfer at t (at once when t has passed).
func (d *pipeDevice) SetDeadline(t time.Time) error {
	d.mu.Lock()
	d.dl = t
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if !t.IsZero() {
		d.timer = time.AfterFunc(time.Until(t), d.abortAll)
	}
	d.mu.Unlock()
	return nil
}

func (d *pipeDevice) mapErr(what string, pipe uint8, err error) error {
	switch {
	case errors.Is(err, errPipeAborted):
		if e := d.expired(); e != nil {
			return e
		}
		return failure.Kinded(failure.ErrIO, fmt.Errorf("usb: %s (%s): the transfer was aborted", what, d.info.Serial))
	case errors.Is(err, errPipeStalled):
		if rerr := d.ops.resetPipe(pipe); rerr != nil {
			return failure.Kinded(failure.ErrIO, fmt.Errorf("usb: %s: endpoint %#02x stalled and clearing the halt failed: %w", what, pipe, rerr))
		}
		return fmt.Errorf("usb: %s: endpoint %#02x: %w", what, pipe, ErrStalled)
	case errors.Is(err, errPipeGone):
		return fmt.Errorf("usb: %s (%s): %w", what, d.info.Serial, ErrDisconnected)
	}
	return failure.Kinded(failure.ErrIO, fmt.Errorf("usb: %s (%s): %w", what, d.info.Serial, err))
}

// Write sends p as one message in transfers of at most 1 MiB.
func (d *pipeDevice) Write(p []byte) (int, error) {
	d.xferMu.Lock()
	defer d.xferMu.Unlock()
	sent := 0
	for sent < len(p) {
		if err := d.expired(); err != nil {
			return sent, err
		}
		k := min(len(p)-sent, pipeChunk)
		n, err := d.ops.writePipe(d.info.EndpointOut, p[sent:sent+k])
		sent += n
		if err != nil {
			return sent, d.mapErr("bulk write", d.info.EndpointOut, err)
		}
		if n != k {
			return sent, failure.Kinded(failure.ErrIO, fmt.Errorf("usb: bulk write: the device took %d of %d bytes", n, k))
		}
	}
	return sent, nil
}

// Read receives one transfer of at most len(p) bytes.
func (d *pipeDevice) Read(p []byte) (int, error) {
	d.xferMu.Lock()
	defer d.xferMu.Unlock()
	if len(p) > pipeChunk {
		p = p[:pipeChunk]
	}
	for {
		if err := d.expired(); err != nil {
			return 0, err
		}
		n, err := d.ops.readPipe(d.info.EndpointIn, p)
		if err != nil {
			return 0, d.mapErr("bulk read", d.info.EndpointIn, err)
		}
		if n > 0 {
			return n, nil
		}
	}
}

// Close aborts a running transfer and closes the device.
func (d *pipeDevice) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	if d.timer != nil {
		d.timer.Stop()
	}
	d.mu.Unlock()
	d.abortAll()
	d.xferMu.Lock()
	defer d.xferMu.Unlock()
	return d.ops.close()
}
