//go:build linux

package gadget

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/romforge/romforge/flash/fastboot"
	"github.com/romforge/romforge/internal/failure"
)

// Listener is a bound fastboot gadget; it is a fastboot.Listener whose Accept returns once a host has
// configured the device.
type Listener struct {
	opt              Options
	dir              string // the configfs gadget
	udc              string
	ep0, epOut, epIn int

	mu      sync.Mutex
	enabled bool
	gen     int // counts ENABLE events: a session belongs to one
	closed  bool
	stallOn string
	active  *Transport    // the session being served: one host at a time, like a phone
	changed chan struct{} // closed and replaced on every state change

	ep0Done chan struct{}
}

type addr string

func (a addr) Network() string { return "usb" }
func (a addr) String() string  { return string(a) }

// Addr names the UDC and the gadget.
func (l *Listener) Addr() net.Addr { return addr(l.udc + "/" + l.opt.Name) }

func setupErr(what string, err error) error {
	hint := "run as root on Linux with configfs, libcomposite and usb_f_fs loaded (modprobe libcomposite usb_f_fs) and a USB device controller in /sys/class/udc (dummy_hcd provides one for tests)"
	return failure.Kinded(failure.ErrIO, fmt.Errorf("gadget: %s: %w; %s", what, err, hint))
}

func writeAttr(path, v string) error {
	if err := os.WriteFile(path, []byte(v+"\n"), 0o644); err != nil {
		return setupErr("writing "+path, err)
	}
	return nil
}

// Listen creates the gadget, mounts its FunctionFS instance, writes the descriptors and binds the UDC.
func Listen(opt Options) (*Listener, error) {
	opt.defaults()
	if opt.Serial == "" {
		return nil, failure.Kinded(failure.ErrUsage, errors.New("gadget: a serial number is needed"))
	}
	l := &Listener{opt: opt, stallOn: opt.StallOn, changed: make(chan struct{}), ep0: -1, epOut: -1, epIn: -1, ep0Done: make(chan struct{})}
	root := filepath.Join(opt.ConfigFS, "usb_gadget")
	if _, err := os.Stat(root); err != nil {
		// configfs may just not be mounted yet.
		unix.Mount("none", opt.ConfigFS, "configfs", 0, "")
		if _, err := os.Stat(root); err != nil {
			return nil, setupErr("no "+root, err)
		}
	}
	l.udc = opt.UDC
	if l.udc == "" {
		ents, err := os.ReadDir("/sys/class/udc")
		if err != nil || len(ents) == 0 {
			if err == nil {
				err = os.ErrNotExist
			}
			return nil, setupErr("no USB device controller in /sys/class/udc", err)
		}
		l.udc = ents[0].Name()
	}
	l.dir = filepath.Join(root, opt.Name)
	// A gadget of this name left by a killed emulator is ours to replace.
	if err := removeGadget(l.dir, opt.Name, opt.FFSDir); err != nil {
		return nil, setupErr("removing the stale gadget "+l.dir, err)
	}
	if err := l.create(); err != nil {
		l.teardown()
		return nil, err
	}
	go l.events()
	if err := writeAttr(filepath.Join(l.dir, "UDC"), l.udc); err != nil {
		l.teardown()
		return nil, err
	}
	opt.Logf("gadget %s (%04x:%04x, serial %s) bound to %s", opt.Name, opt.VendorID, opt.ProductID, opt.Serial, l.udc)
	return l, nil
}

func (l *Listener) create() error {
	o, g := l.opt, l.dir
	if err := os.Mkdir(g, 0o755); err != nil {
		return setupErr("creating the gadget", err)
	}
	for _, kv := range [][2]string{
		{"idVendor", fmt.Sprintf("0x%04x", o.VendorID)}, {"idProduct", fmt.Sprintf("0x%04x", o.ProductID)},
		{"bcdUSB", "0x0200"}, {"bcdDevice", "0x0100"},
	} {
		if err := writeAttr(filepath.Join(g, kv[0]), kv[1]); err != nil {
			return err
		}
	}
	for _, d := range []string{"strings/0x409", "configs/c.1/strings/0x409", "functions/ffs." + o.Name} {
		if err := os.MkdirAll(filepath.Join(g, d), 0o755); err != nil {
			return setupErr("creating "+d, err)
		}
	}
	for _, kv := range [][2]string{
		{"strings/0x409/serialnumber", o.Serial}, {"strings/0x409/manufacturer", o.Manufacturer},
		{"strings/0x409/product", o.Product}, {"configs/c.1/strings/0x409/configuration", "fastboot"},
		{"configs/c.1/MaxPower", "500"},
	} {
		if err := writeAttr(filepath.Join(g, kv[0]), kv[1]); err != nil {
			return err
		}
	}
	if err := os.Symlink(filepath.Join(g, "functions/ffs."+o.Name), filepath.Join(g, "configs/c.1/ffs."+o.Name)); err != nil {
		return setupErr("adding the function to the configuration", err)
	}
	if err := os.MkdirAll(o.FFSDir, 0o755); err != nil {
		return setupErr("creating "+o.FFSDir, err)
	}
	if err := unix.Mount(o.Name, o.FFSDir, "functionfs", 0, ""); err != nil {
		return setupErr("mounting functionfs at "+o.FFSDir, err)
	}
	var err error
	if l.ep0, err = unix.Open(filepath.Join(o.FFSDir, "ep0"), unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
		return setupErr("opening ep0", err)
	}
	for _, b := range [][]byte{descriptors(), stringsBlock()} {
		if _, err := unix.Write(l.ep0, b); err != nil {
			return setupErr("writing FunctionFS descriptors", err)
		}
	}
	// O_NONBLOCK only makes I/O on a disabled endpoint fail with EAGAIN instead of waiting, so that
	// Close never hangs; transfers themselves still block until done or the UDC is unbound.
	if l.epOut, err = unix.Open(filepath.Join(o.FFSDir, "ep1"), unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0); err != nil {
		return setupErr("opening ep1", err)
	}
	if l.epIn, err = unix.Open(filepath.Join(o.FFSDir, "ep2"), unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0); err != nil {
		return setupErr("opening ep2", err)
	}
	return nil
}

// teardown undoes create as far as it got.
func (l *Listener) teardown() {
	os.WriteFile(filepath.Join(l.dir, "UDC"), []byte("\n"), 0o644)
	for _, fd := range []int{l.epIn, l.epOut} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	if l.ep0 >= 0 {
		unix.Close(l.ep0)
		select {
		case <-l.ep0Done:
		case <-time.After(2 * time.Second):
		}
	}
	l.epIn, l.epOut, l.ep0 = -1, -1, -1
	if err := removeGadget(l.dir, l.opt.Name, l.opt.FFSDir); err != nil {
		l.opt.Logf("gadget: removing %s: %v", l.dir, err)
	}
}

// removeGadget unbinds and deletes a gadget directory and unmounts its FunctionFS instance, also one
// left behind by a process that was killed. configfs lets go of a function only once its FunctionFS
// instance is released, which the kernel finishes asynchronously: removals are retried for a while.
func removeGadget(dir, name, ffsDir string) error {
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	os.WriteFile(filepath.Join(dir, "UDC"), []byte("\n"), 0o644)
	var err error
	for try := 0; try < 40; try++ {
		// A busy FunctionFS mount shows as the removals below failing; those errors are what is retried.
		_ = unix.Unmount(ffsDir, 0)
		os.Remove(filepath.Join(dir, "configs/c.1/ffs."+name))
		err = nil
		for _, d := range []string{"configs/c.1/strings/0x409", "configs/c.1", "functions/ffs." + name, "strings/0x409", ""} {
			if e := os.Remove(filepath.Join(dir, d)); e != nil && !errors.Is(e, os.ErrNotExist) {
				err = e
			}
		}
		if err == nil {
			os.Remove(ffsDir)
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// events follows ep0: ENABLE starts a session, DISABLE/UNBIND end it; control requests the function
// does not know are stalled.
func (l *Listener) events() {
	defer close(l.ep0Done)
	buf := make([]byte, 4*eventSize)
	for {
		n, err := unix.Read(l.ep0, buf)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		for _, e := range parseEvents(buf[:n]) {
			switch e.Type {
			case evEnable:
				l.setEnabled(true)
			case evDisable, evUnbind:
				l.setEnabled(false)
			case evSetup:
				var b [1]byte
				// An I/O against the request's direction stalls it.
				if e.RequestType&0x80 != 0 {
					unix.Read(l.ep0, b[:0])
				} else {
					unix.Write(l.ep0, b[:0])
				}
			}
		}
	}
}

func (l *Listener) setEnabled(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if on && !l.enabled {
		l.gen++
	}
	l.enabled = on
	l.notifyLocked()
	l.opt.Logf("gadget: host %s", map[bool]string{true: "configured the device", false: "went away"}[on])
}

func (l *Listener) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Accept waits until a host has configured the device and returns that session's transport.
func (l *Listener) Accept() (fastboot.Transport, error) {
	for {
		l.mu.Lock()
		closed, enabled, gen, ch, busy := l.closed, l.enabled, l.gen, l.changed, l.active != nil
		if !closed && enabled && !busy {
			t := &Transport{l: l, gen: gen}
			l.active = t
			l.mu.Unlock()
			return t, nil
		}
		l.mu.Unlock()
		if closed {
			return nil, net.ErrClosed
		}
		<-ch
	}
}

// Close unbinds the UDC (the phone leaves the bus) and removes the gadget.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.notifyLocked()
	l.mu.Unlock()
	l.teardown()
	return nil
}

// replug unbinds the UDC and binds it again: what the host sees when a phone reboots or the cable is
// pulled and plugged back.
func (l *Listener) replug() {
	p := filepath.Join(l.dir, "UDC")
	// A phone leaves the bus a moment after its last answer; at once, the host could lose that answer.
	time.Sleep(300 * time.Millisecond)
	os.WriteFile(p, []byte("\n"), 0o644)
	time.Sleep(300 * time.Millisecond)
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if !closed {
		os.WriteFile(p, []byte(l.udc+"\n"), 0o644)
		l.opt.Logf("gadget: replugged")
	}
}

// Transport is one USB session: bulk OUT reads and bulk IN writes, valid until the host goes away.
type Transport struct {
	l       *Listener
	gen     int
	mu      sync.Mutex
	closed  bool
	swallow bool // the reply to a stalled command is not sent
}

// live reports whether the session is still the current one.
func (t *Transport) live() (bool, chan struct{}) {
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.closed && !t.l.closed && t.l.enabled && t.l.gen == t.gen, t.l.changed
}

// io runs one transfer, mapping the end of the session to io.EOF.
func (t *Transport) io(f func() (int, error)) (int, error) {
	for {
		ok, ch := t.live()
		if !ok {
			return 0, io.EOF
		}
		n, err := f()
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			// The endpoint is not enabled (yet or any more): wait for the ep0 event.
			select {
			case <-ch:
			case <-time.After(100 * time.Millisecond):
			}
			continue
		case err == unix.ESHUTDOWN || err == unix.ECONNRESET || err == unix.ENODEV:
			// The endpoint was reset under the transfer: the host went away (DISABLE follows and
			// live turns false) or reconfigured the device (the session goes on).
			t.l.opt.Logf("gadget: transfer ended with %v", err)
			select {
			case <-ch:
			case <-time.After(50 * time.Millisecond):
			}
			continue
		case err != nil:
			return 0, fmt.Errorf("gadget: %w", err)
		}
		return n, nil
	}
}

// uninterruptible runs one FunctionFS transfer with every signal blocked on its thread. f_fs dequeues a
// transfer that a signal interrupts and drops the bytes it had already received (the read returns
// EINTR), and Go's runtime signals its threads by itself (SIGURG preemption): under load a download lost
// data that way and never completed. Blocked signals stay pending and are handled right after.
func uninterruptible(f func() (int, error)) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all, old unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^all.Val[i]
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &all, &old); err != nil {
		return f()
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	return f()
}

// Read receives one bulk OUT transfer (a command or a piece of download data).
func (t *Transport) Read(p []byte) (int, error) {
	for {
		n, err := t.io(func() (int, error) {
			return uninterruptible(func() (int, error) { return unix.Read(t.l.epOut, p) })
		})
		if err != nil || n > 0 {
			if err == nil {
				t.maybeStall(p[:n])
			}
			return n, err
		}
	}
}

// maybeStall fires the StallOn fault: the IN endpoint is halted and the answer to this command dropped.
func (t *Transport) maybeStall(cmd []byte) {
	l := t.l
	l.mu.Lock()
	hit := l.stallOn != "" && string(cmd) == l.stallOn
	if hit {
		l.stallOn = ""
	}
	l.mu.Unlock()
	if !hit {
		return
	}
	var b [1]byte
	_, err := unix.Read(l.epIn, b[:0]) // I/O against the endpoint's direction halts it
	l.opt.Logf("gadget: halted the IN endpoint on %q (%v)", cmd, err)
	t.mu.Lock()
	t.swallow = true
	t.mu.Unlock()
}

// Write sends one message on bulk IN.
func (t *Transport) Write(p []byte) (int, error) {
	t.mu.Lock()
	if t.swallow {
		t.swallow = false
		t.mu.Unlock()
		return len(p), nil
	}
	t.mu.Unlock()
	sent := 0
	for sent < len(p) {
		n, err := t.io(func() (int, error) {
			return uninterruptible(func() (int, error) { return unix.Write(t.l.epIn, p[sent:]) })
		})
		if err != nil {
			return sent, err
		}
		sent += n
	}
	return sent, nil
}

// Close ends the session. When the host is still there the phone leaves the bus and comes back, as a
// real one does after a reboot or when the connection is cut.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.mu.Unlock()
	ok, _ := t.live()
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	if ok {
		t.l.replug()
	}
	t.l.mu.Lock()
	if t.l.active == t {
		t.l.active = nil
		t.l.notifyLocked()
	}
	t.l.mu.Unlock()
	return nil
}

var _ fastboot.Listener = (*Listener)(nil)
