package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/romforge/romforge/flash/fastboot"
	"github.com/romforge/romforge/image/sparse"
)

// maxReply keeps replies within the 64 bytes old bootloaders use, so the emulator looks like a phone
// to every client.
const maxReply = 64

// Command is a parsed fastboot command.
type Command struct {
	Verb string // getvar, download, flash, oem, flashing, reboot-bootloader, …
	Arg  string // what follows "verb:" (or "verb " for oem and flashing)
}

// ParseCommand splits a command message. Commands are printable ASCII of at most 64 bytes.
func ParseCommand(b []byte) (Command, error) {
	if len(b) == 0 {
		return Command{}, errors.New("empty command")
	}
	if len(b) > fastboot.MaxCommandSize {
		return Command{}, fmt.Errorf("command too long (%d bytes)", len(b))
	}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return Command{}, errors.New("command is not printable ASCII")
		}
	}
	s := string(b)
	if v, a, ok := strings.Cut(s, " "); ok && (v == "oem" || v == "flashing") {
		return Command{Verb: v, Arg: a}, nil
	}
	if v, a, ok := strings.Cut(s, ":"); ok {
		return Command{Verb: v, Arg: a}, nil
	}
	return Command{Verb: s}, nil
}

// errHangUp ends a connection after a reboot or continue.
var errHangUp = errors.New("hang up")

// conn is one host connection being served.
type conn struct {
	d   *Device
	t   fastboot.Transport
	ctx context.Context
	buf []byte
	// cut is set while the command that arms the cut-after fault runs: its final reply hangs up instead.
	cut bool
}

// Serve answers one host connection until it closes, the phone reboots, a fault cuts it, or ctx ends.
// It closes t.
func (d *Device) Serve(ctx context.Context, t fastboot.Transport) error {
	stop := context.AfterFunc(ctx, func() { t.Close() })
	defer stop()
	defer t.Close()
	c := &conn{d: d, t: t, ctx: ctx, buf: make([]byte, 1<<20)}
	for {
		n, err := t.Read(c.buf[:4096])
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := c.handle(c.buf[:n]); err != nil {
			if errors.Is(err, errHangUp) {
				return nil
			}
			return err
		}
	}
}

func (c *conn) reply(status, msg string) error {
	s := status + msg
	if len(s) > maxReply {
		s = s[:maxReply]
	}
	c.d.mu.Lock()
	if c.cut && (status == fastboot.StatusOkay || status == fastboot.StatusFail) {
		c.cut = false
		c.d.transcript = append(c.d.transcript, "   [connection cut by fault injection before the reply]")
		c.d.mu.Unlock()
		c.t.Close()
		return errHangUp
	}
	lat := c.d.fault.Latency
	c.d.transcript = append(c.d.transcript, "<- "+s)
	c.d.mu.Unlock()
	if lat > 0 {
		select {
		case <-time.After(lat):
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
	}
	_, err := c.t.Write([]byte(s))
	return err
}

func (c *conn) okay(msg string) error { return c.reply(fastboot.StatusOkay, msg) }
func (c *conn) fail(msg string) error { return c.reply(fastboot.StatusFail, msg) }
func (c *conn) info(msg string) error { return c.reply(fastboot.StatusInfo, msg) }

func (c *conn) handle(b []byte) error {
	d := c.d
	d.mu.Lock()
	d.transcript = append(d.transcript, "-> "+strconv.QuoteToASCII(string(b))[1:len(strconv.QuoteToASCII(string(b)))-1])
	if d.fault.CutAfter != "" && d.fault.CutAfter == string(b) {
		d.fault.CutAfter = ""
		c.cut = true
	}
	d.mu.Unlock()
	cmd, err := ParseCommand(b)
	if err != nil {
		return c.fail(err.Error())
	}
	d.logf("%s %s", cmd.Verb, cmd.Arg)
	switch cmd.Verb {
	case "getvar":
		return c.getvar(cmd.Arg)
	case "download":
		return c.download(cmd.Arg)
	case "upload":
		return c.upload()
	case "flash":
		return c.flash(cmd.Arg)
	case "erase":
		return c.erase(cmd.Arg)
	case "set_active":
		return c.setActive(cmd.Arg)
	case "reboot", "reboot-bootloader", "reboot-fastboot", "reboot-recovery", "continue":
		return c.reboot(cmd.Verb)
	case "boot":
		return c.fail("boot is not supported by the emulator")
	case "flashing", "oem":
		return c.oem(cmd)
	case "snapshot-update":
		return c.snapshot(cmd.Arg)
	case "create-logical-partition", "delete-logical-partition", "resize-logical-partition", "update-super":
		d.mu.Lock()
		us := d.st.Userspace
		d.mu.Unlock()
		if !us {
			return c.fail("unknown command")
		}
		return c.logical(cmd)
	}
	return c.fail("unknown command")
}

func (c *conn) getvar(name string) error {
	d := c.d
	if name == "all" {
		d.mu.Lock()
		lines := d.allVars()
		d.mu.Unlock()
		for _, l := range lines {
			if err := c.info(l); err != nil {
				return err
			}
		}
		return c.okay("")
	}
	v, ok := d.Var(name)
	if !ok {
		return c.fail("GetVar Variable Not found")
	}
	return c.okay(v)
}

func (d *Device) stagedPath() string { return filepath.Join(d.dir, "staged.bin") }

// download receives the host's data into the staged buffer, holding the buffer's lock throughout: a
// phone has one buffer.
func (c *conn) download(arg string) error {
	d := c.d
	n, err := strconv.ParseUint(arg, 16, 32)
	if err != nil || len(arg) == 0 || len(arg) > 8 {
		return c.fail("invalid download size")
	}
	size := int64(n)
	if size > d.maxDL {
		return c.fail("data too large")
	}
	d.bufMu.Lock()
	defer d.bufMu.Unlock()
	f, err := os.Create(d.stagedPath())
	if err != nil {
		return c.fail("cannot stage data: " + err.Error())
	}
	defer f.Close()
	d.mu.Lock()
	d.staged = -1
	d.mu.Unlock()
	if err := c.reply(fastboot.StatusData, fmt.Sprintf("%08x", size)); err != nil {
		return err
	}
	start := time.Now()
	var got int64
	for got < size {
		k := min(int64(len(c.buf)), size-got)
		d.mu.Lock()
		fault := d.fault
		dropAt := int64(-1)
		if fault.DropAfter > 0 {
			dropAt = d.dropBase + fault.DropAfter - d.received
		}
		d.mu.Unlock()
		if dropAt >= 0 && dropAt < k {
			k = max(dropAt, 0)
		}
		if k == 0 {
			return c.drop()
		}
		m, err := c.t.Read(c.buf[:k])
		if err != nil {
			return fmt.Errorf("emulator: download: after %d of %d bytes: %w", got, size, err)
		}
		if _, err := f.Write(c.buf[:m]); err != nil {
			c.fail("cannot stage data")
			return err
		}
		got += int64(m)
		d.mu.Lock()
		d.received += int64(m)
		d.mu.Unlock()
		if fault.Rate > 0 {
			due := start.Add(time.Duration(float64(got) / fault.Rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				select {
				case <-time.After(wait):
				case <-c.ctx.Done():
					return c.ctx.Err()
				}
			}
		}
	}
	dt := time.Since(start)
	d.mu.Lock()
	d.staged = size
	d.transcript = append(d.transcript, fmt.Sprintf("   [%d bytes]", size))
	d.stats.Downloads++
	d.stats.DownloadBytes += size
	d.stats.DataTime += dt
	d.mu.Unlock()
	d.logf("download: %d bytes in %.3fs (%.1f MB/s)", size, dt.Seconds(), float64(size)/max(dt.Seconds(), 1e-9)/1e6)
	return c.okay("")
}

// drop fires the drop-after fault: the connection goes away mid-transfer, once.
func (c *conn) drop() error {
	d := c.d
	d.mu.Lock()
	d.fault.DropAfter = 0
	d.transcript = append(d.transcript, "   [connection dropped by fault injection]")
	d.mu.Unlock()
	c.t.Close()
	return errHangUp
}

func (c *conn) upload() error {
	d := c.d
	d.bufMu.Lock()
	defer d.bufMu.Unlock()
	d.mu.Lock()
	n := d.staged
	d.mu.Unlock()
	if n < 0 {
		return c.fail("nothing staged")
	}
	f, err := os.Open(d.stagedPath())
	if err != nil {
		return c.fail("nothing staged")
	}
	defer f.Close()
	if err := c.reply(fastboot.StatusData, fmt.Sprintf("%08x", n)); err != nil {
		return err
	}
	var sent int64
	for sent < n {
		k := min(int64(len(c.buf)), n-sent)
		if _, err := io.ReadFull(f, c.buf[:k]); err != nil {
			return err
		}
		if _, err := c.t.Write(c.buf[:k]); err != nil {
			return err
		}
		sent += k
	}
	return c.okay("")
}

// countingWriterAt counts bytes written to a partition file.
type countingWriterAt struct {
	f *os.File
	d *Device
}

func (w countingWriterAt) WriteAt(p []byte, off int64) (int, error) {
	n, err := w.f.WriteAt(p, off)
	w.d.writes.Add(int64(n))
	return n, err
}

func (c *conn) flash(name string) error {
	d := c.d
	d.bufMu.Lock()
	defer d.bufMu.Unlock()
	start := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.st.Unlocked {
		return c.failLocked("Flashing is not allowed in Lock State")
	}
	part, pi, _, ok := d.resolve(name)
	if !ok {
		return c.failLocked("Partition not found")
	}
	if d.staged < 0 {
		return c.failLocked("no image downloaded")
	}
	if d.fault.failsFlash(part) {
		return c.failLocked("flash write failure (injected)")
	}
	src, err := os.Open(d.stagedPath())
	if err != nil {
		return c.failLocked("no image downloaded")
	}
	defer src.Close()
	dst, err := os.OpenFile(d.PartitionPath(part), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return c.failLocked("cannot open partition")
	}
	defer dst.Close()
	w := countingWriterAt{dst, d}
	if sparse.IsSparse(src) {
		img, err := sparse.NewReader(src, d.staged)
		if err != nil {
			return c.failLocked("invalid sparse image")
		}
		if img.Size() > pi.size {
			return c.failLocked("size too large")
		}
		// An empty partition file (never written, or erased) reads as zeros once extended: zero fills
		// need not be written, as a phone's eMMC need not rewrite blocks it already knows are zero
		// (discard). A file with data gets every fill written.
		zeroed := false
		if st, err := dst.Stat(); err == nil && st.Size() < img.Size() {
			zeroed = st.Size() == 0
			dst.Truncate(img.Size())
		}
		if err := img.Expand(c.ctx, w, zeroed, nil); err != nil {
			d.changedLocked(part) // a half-written partition was changed too
			d.mutatedLocked()
			return c.failLocked("flash write failure")
		}
	} else {
		if d.staged > pi.size {
			return c.failLocked("size too large")
		}
		if _, err := io.Copy(io.NewOffsetWriter(w, 0), io.NewSectionReader(src, 0, d.staged)); err != nil {
			d.changedLocked(part) // a half-written partition was changed too
			d.mutatedLocked()
			return c.failLocked("flash write failure")
		}
	}
	if part == "super" && d.dev.Dynamic {
		d.superFlashedLocked()
	}
	d.changedLocked(part)
	d.mutatedLocked()
	dt := time.Since(start)
	d.stats.Flashes++
	d.stats.FlashTime += dt
	d.logf("flash %s: %d staged bytes written in %.3fs", part, d.staged, dt.Seconds())
	return c.okayLocked("")
}

// mutatedLocked records a change and saves the state.
func (d *Device) mutatedLocked() {
	d.st.Mutations++
	d.save()
}

// okayLocked and failLocked reply while d.mu is held.
func (c *conn) okayLocked(msg string) error {
	c.d.mu.Unlock()
	defer c.d.mu.Lock()
	return c.okay(msg)
}

func (c *conn) failLocked(msg string) error {
	c.d.mu.Unlock()
	defer c.d.mu.Lock()
	return c.fail(msg)
}

func (c *conn) erase(name string) error {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.st.Unlocked {
		return c.failLocked("Erase is not allowed in Lock State")
	}
	part, _, _, ok := d.resolve(name)
	if !ok {
		return c.failLocked("Partition not found")
	}
	if d.fault.failsFlash(part) {
		return c.failLocked("erase failure (injected)")
	}
	if err := os.Truncate(d.PartitionPath(part), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return c.failLocked("erase failure")
	}
	d.changedLocked(part)
	d.mutatedLocked()
	return c.okayLocked("")
}

func (c *conn) setActive(slot string) error {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	slot = strings.TrimPrefix(slot, "_")
	if !d.dev.AB {
		return c.failLocked("set_active: device has no slots")
	}
	if slot != "a" && slot != "b" {
		return c.failLocked("Invalid slot")
	}
	if !d.st.Unlocked {
		return c.failLocked("set_active is not allowed on locked devices")
	}
	d.st.Slot = slot
	if d.st.Unbootable != nil {
		delete(d.st.Unbootable, slot)
	}
	d.mutatedLocked()
	return c.okayLocked("")
}

func (c *conn) reboot(verb string) error {
	d := c.d
	d.mu.Lock()
	if verb == "reboot-fastboot" && !d.dev.Dynamic {
		d.mu.Unlock()
		return c.fail("unknown command")
	}
	switch verb {
	case "reboot-fastboot":
		d.st.Userspace = true
	default:
		// The emulated user holds volume-down: every other reboot lands in the bootloader again.
		d.st.Userspace = false
	}
	d.save()
	d.mu.Unlock()
	if err := c.okay(""); err != nil {
		return err
	}
	return errHangUp
}

func (c *conn) oem(cmd Command) error {
	d := c.d
	arg := strings.TrimSpace(cmd.Arg)
	switch {
	case arg == "unlock" || arg == "unlock_critical" || (cmd.Verb == "oem" && arg == "unlock-go"):
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.st.Unlocked {
			return c.failLocked("Device already : unlocked!")
		}
		if !d.opt.AllowUnlock {
			return c.failLocked("unlock is not allowed on this device")
		}
		d.st.Unlocked = true
		d.mutatedLocked()
		return c.okayLocked("")
	case arg == "lock" || arg == "lock_critical":
		d.mu.Lock()
		defer d.mu.Unlock()
		if !d.st.Unlocked {
			return c.failLocked("Device already : locked!")
		}
		d.st.Unlocked = false
		d.mutatedLocked()
		return c.okayLocked("")
	case cmd.Verb == "flashing" && arg == "get_unlock_ability":
		d.mu.Lock()
		v := "0"
		if d.opt.AllowUnlock {
			v = "1"
		}
		d.mu.Unlock()
		if err := c.info("get_unlock_ability: " + v); err != nil {
			return err
		}
		return c.okay("")
	case cmd.Verb == "oem" && arg == "device-info":
		d.mu.Lock()
		u := d.st.Unlocked
		d.mu.Unlock()
		for _, l := range []string{"Verity mode: true", fmt.Sprintf("Device unlocked: %t", u),
			fmt.Sprintf("Device critical unlocked: %t", u), "Charger screen enabled: false"} {
			if err := c.info(l); err != nil {
				return err
			}
		}
		return c.okay("")
	}
	return c.fail("unknown command")
}

func (c *conn) snapshot(arg string) error {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.dev.Dynamic {
		return c.failLocked("unknown command")
	}
	switch arg {
	case "cancel":
		d.st.Snapshot = "none"
		d.mutatedLocked()
		return c.okayLocked("")
	case "merge":
		if d.st.Snapshot == "none" {
			return c.failLocked("No snapshot merge is in progress")
		}
		d.st.Snapshot = "none"
		d.mutatedLocked()
		return c.okayLocked("")
	}
	return c.failLocked("unknown snapshot-update action")
}

// logical handles the fastbootd logical partition commands (the caller checked the mode).
func (c *conn) logical(cmd Command) error {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.st.Unlocked {
		return c.failLocked("Command not available on locked devices")
	}
	args := strings.Split(cmd.Arg, ":")
	sized := func() (string, int64, string) {
		if len(args) != 2 || args[0] == "" {
			return "", 0, "Invalid partition name and size"
		}
		n, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil || n < 0 {
			return "", 0, "Invalid partition size"
		}
		return args[0], n, ""
	}
	switch cmd.Verb {
	case "create-logical-partition":
		name, size, bad := sized()
		if bad != "" {
			return c.failLocked(bad)
		}
		if _, _, exists := d.lookup(name); exists {
			return c.failLocked("Partition already exists")
		}
		if !d.fitsLocked(name, size) {
			return c.failLocked("Not enough space in super")
		}
		d.st.Logical[name] = size
		if err := d.truncateLocked(name, size); err != nil {
			return c.failLocked("cannot create partition")
		}
	case "delete-logical-partition":
		if len(args) != 1 || args[0] == "" {
			return c.failLocked("Invalid partition name")
		}
		if _, ok := d.st.Logical[args[0]]; !ok {
			return c.failLocked("Could not find partition")
		}
		delete(d.st.Logical, args[0])
		os.Remove(d.PartitionPath(args[0]))
	case "resize-logical-partition":
		name, size, bad := sized()
		if bad != "" {
			return c.failLocked(bad)
		}
		if _, ok := d.st.Logical[name]; !ok {
			return c.failLocked("Could not find partition")
		}
		if !d.fitsLocked(name, size) {
			return c.failLocked("Not enough space to resize partition")
		}
		d.st.Logical[name] = size
		if err := d.truncateLocked(name, size); err != nil {
			return c.failLocked("cannot resize partition")
		}
	case "update-super":
		if len(args) < 1 || args[0] != "super" || len(args) > 2 || (len(args) == 2 && args[1] != "wipe") {
			return c.failLocked("Invalid super partition name")
		}
		if d.staged < 0 {
			return c.failLocked("No data staged")
		}
		if d.staged > d.phys["super"].size {
			return c.failLocked("Super metadata is too large")
		}
		// The metadata is not interpreted: the catalog's logical partitions of the current slot are
		// (re)declared empty, as a super_empty.img for this device declares them.
		if len(args) == 2 {
			for n := range d.st.Logical {
				os.Remove(d.PartitionPath(n))
			}
			d.st.Logical = map[string]int64{}
		}
		for base := range d.logicalBases {
			n := base
			if d.dev.AB {
				n += "_" + d.st.Slot
			}
			if _, ok := d.st.Logical[n]; !ok {
				d.st.Logical[n] = 0
			}
		}
	}
	d.mutatedLocked()
	return c.okayLocked("")
}

func (d *Device) fitsLocked(name string, size int64) bool {
	var total int64
	for n, s := range d.st.Logical {
		if n != name {
			total += s
		}
	}
	return total+size <= d.superLimit()
}

func (d *Device) truncateLocked(name string, size int64) error {
	f, err := os.OpenFile(d.PartitionPath(name), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Truncate(size)
}

// ServeListener accepts hosts on l and serves each until ctx ends (then l is closed).
func (d *Device) ServeListener(ctx context.Context, l fastboot.Listener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		t, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.Serve(ctx, t); err != nil {
				d.logf("connection ended: %v", err)
			}
		}()
	}
}

// ListenAndServe serves hosts at addr ("tcp:HOST:PORT" or "udp:HOST:PORT") until ctx ends.
func (d *Device) ListenAndServe(ctx context.Context, addr string) error {
	l, err := fastboot.Listen(addr)
	if err != nil {
		return err
	}
	return d.ServeListener(ctx, l)
}
