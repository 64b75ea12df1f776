package fastboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/progress"
)

// Transport carries fastboot messages: one Write sends one message (a command, or a piece of download
// data) and one Read returns one message from the device (a reply, or a piece of upload data; a message
// longer than the buffer is returned over several Reads). A transport that also has
// SetDeadline(time.Time) error gets per-command timeouts and context cancellation.
type Transport interface {
	io.ReadWriteCloser
}

type deadliner interface {
	SetDeadline(t time.Time) error
}

// Defaults of the Client's timeouts.
const (
	// DefaultTimeout is how long the client waits for each reply (every INFO restarts it), as the AOSP
	// client does.
	DefaultTimeout = 30 * time.Second
	// DefaultSlowTimeout is the wait for commands that write a partition (flash, erase, update-super,
	// snapshot-update, set_active): big partitions take minutes on slow eMMC.
	DefaultSlowTimeout = 10 * time.Minute
)

// chunkSize is how much download data goes into one transport Write: large enough for few syscalls and
// frames, small enough that USB transfers stay within usbfs limits.
const chunkSize = 1 << 20

// Option configures a Client.
type Option func(*Client)

// WithTimeout sets the reply timeout of ordinary commands (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithSlowTimeout sets the reply timeout of commands that write partitions (default DefaultSlowTimeout).
func WithSlowTimeout(d time.Duration) Option { return func(c *Client) { c.slow = d } }

// WithInfo receives every INFO line (and TEXT piece) as it arrives, e.g. to print "(bootloader) …".
func WithInfo(f func(line string)) Option { return func(c *Client) { c.info = f } }

// WithLog receives every message sent ("-> …") and received ("<- …"), data transfers summarised, for
// transcripts and --verbose.
func WithLog(f func(line string)) Option { return func(c *Client) { c.log = f } }

// Client talks to one fastboot device over a Transport. Its methods are safe for concurrent use but run
// one command at a time. After a transport failure, a timeout or a cancellation in the middle of an
// exchange the connection is out of step and every later call fails: reconnect with a new Client.
type Client struct {
	t       Transport
	timeout time.Duration
	slow    time.Duration
	info    func(string)
	log     func(string)

	mu     sync.Mutex
	broken error
	rbuf   []byte
	dbuf   []byte

	dlMu     sync.Mutex // orders deadline changes against cancellation
	canceled bool

	stats Stats // under mu
}

// Stats sum up where a client's time went, so that throughput can be told apart from the device's
// write time: a fastboot exchange is serial, the device writes while the host waits.
type Stats struct {
	// Downloads and DownloadBytes count completed download commands and their data.
	Downloads     int   `json:"downloads"`
	DownloadBytes int64 `json:"download_bytes"`
	// DownloadTime runs from sending download:%08x to the OKAY after the data.
	DownloadTime time.Duration `json:"download_ns"`
	// Flashes and FlashTime count flash commands, from sending flash:P to its OKAY (the device writing).
	Flashes   int           `json:"flashes"`
	FlashTime time.Duration `json:"flash_ns"`
}

// DownloadRate is DownloadBytes per second of DownloadTime (0 before any download).
func (s Stats) DownloadRate() float64 {
	if s.DownloadTime <= 0 {
		return 0
	}
	return float64(s.DownloadBytes) / s.DownloadTime.Seconds()
}

// Stats returns the transfer statistics since the client was made.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// NewClient returns a client over t. The client owns t: Close closes it.
func NewClient(t Transport, opts ...Option) *Client {
	c := &Client{t: t, timeout: DefaultTimeout, slow: DefaultSlowTimeout, rbuf: make([]byte, 4096)}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Close closes the transport.
func (c *Client) Close() error { return c.t.Close() }

// Transport returns the underlying transport.
func (c *Client) Transport() Transport { return c.t }

// Location is where the device is plugged in (usb:1-2.3) when the transport knows it, else "".
func (c *Client) Location() string {
	if l, ok := c.t.(interface{ Location() string }); ok {
		return l.Location()
	}
	return ""
}

// ErrOutOfStep is returned by every call after an exchange was interrupted; errors.Is works on it.
var ErrOutOfStep = errors.New("fastboot: the connection is out of step after an earlier failure; reconnect")

func (c *Client) logf(format string, args ...any) {
	if c.log != nil {
		c.log(fmt.Sprintf(format, args...))
	}
}

// begin starts an exchange under ctx: it arms cancellation (a past deadline unblocks the transport) and
// returns the function that disarms it.
func (c *Client) begin(ctx context.Context) (func(), error) {
	if c.broken != nil {
		return nil, fmt.Errorf("%w (%v)", ErrOutOfStep, c.broken)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.dlMu.Lock()
	c.canceled = false
	c.dlMu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		c.dlMu.Lock()
		c.canceled = true
		if d, ok := c.t.(deadliner); ok {
			d.SetDeadline(time.Unix(1, 0))
		}
		c.dlMu.Unlock()
	})
	return func() { stop() }, nil
}

// arm sets the transport deadline to now+d unless the exchange was canceled.
func (c *Client) arm(ctx context.Context, d time.Duration) error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	if c.canceled {
		return ctx.Err()
	}
	if dl, ok := c.t.(deadliner); ok && d > 0 {
		dl.SetDeadline(time.Now().Add(d))
	}
	return nil
}

// ioError turns a transport error into the error callers see and marks the connection out of step.
func (c *Client) ioError(ctx context.Context, what string, d time.Duration, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		c.broken = cerr
		return fmt.Errorf("fastboot: %s: %w", what, cerr)
	}
	c.broken = err
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: %s: no answer from the device within %v: %w", what, d, err))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.ErrClosedPipe) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) {
		return failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: %s: the device closed the connection (unplugged or rebooted?): %w", what, err))
	}
	if errors.Is(err, failure.ErrIO) {
		return fmt.Errorf("fastboot: %s: %w", what, err)
	}
	return failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: %s: %w", what, err))
}

// send writes one command.
func (c *Client) send(ctx context.Context, cmd string) error {
	if len(cmd) > MaxCommandSize {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("fastboot: command %q is %d bytes, over the protocol's %d", cmd, len(cmd), MaxCommandSize))
	}
	if err := c.arm(ctx, c.timeout); err != nil {
		return c.ioError(ctx, cmd, c.timeout, err)
	}
	c.logf("-> %s", cmd)
	if _, err := c.t.Write([]byte(cmd)); err != nil {
		return c.ioError(ctx, cmd, c.timeout, err)
	}
	return nil
}

// await reads replies until a final one (OKAY, FAIL, DATA); INFO and TEXT restart the timeout.
func (c *Client) await(ctx context.Context, cmd string, d time.Duration) (Reply, error) {
	var info []string
	for {
		if err := c.arm(ctx, d); err != nil {
			return Reply{}, c.ioError(ctx, cmd, d, err)
		}
		n, err := c.t.Read(c.rbuf)
		if err != nil {
			return Reply{}, c.ioError(ctx, cmd, d, err)
		}
		r, err := ParseReply(c.rbuf[:n])
		if err != nil {
			var pe *ProtocolError
			if errors.As(err, &pe) {
				pe.Command = cmd
			}
			c.broken = err
			return Reply{}, err
		}
		c.logf("<- %s%s", r.Status, r.Value)
		switch r.Status {
		case StatusInfo, StatusText:
			info = append(info, r.Value)
			if c.info != nil {
				c.info(r.Value)
			}
			continue
		}
		r.Info = info
		if r.Status == StatusFail {
			return r, &RemoteError{Command: cmd, Message: r.Value}
		}
		return r, nil
	}
}

// Command sends one command and returns the final reply (OKAY, or DATA for commands that transfer)
// with the INFO lines before it. A FAIL reply is returned too, with a *RemoteError.
func (c *Client) Command(ctx context.Context, cmd string) (Reply, error) {
	return c.command(ctx, cmd, c.timeout)
}

func (c *Client) command(ctx context.Context, cmd string, d time.Duration) (Reply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.commandLocked(ctx, cmd, d)
}

func (c *Client) commandLocked(ctx context.Context, cmd string, d time.Duration) (Reply, error) {
	done, err := c.begin(ctx)
	if err != nil {
		return Reply{}, err
	}
	defer done()
	if err := c.send(ctx, cmd); err != nil {
		return Reply{}, err
	}
	return c.await(ctx, cmd, d)
}

// okay runs a command that must answer OKAY.
func (c *Client) okay(ctx context.Context, cmd string, d time.Duration) error {
	r, err := c.command(ctx, cmd, d)
	if err != nil {
		return err
	}
	if r.Status != StatusOkay {
		return &ProtocolError{Command: cmd, Msg: fmt.Sprintf("unexpected %s reply", r.Status)}
	}
	return nil
}

// GetVar asks one variable. An unknown variable is a *RemoteError (the device answers FAIL).
func (c *Client) GetVar(ctx context.Context, name string) (string, error) {
	r, err := c.Command(ctx, "getvar:"+name)
	if err != nil {
		return "", err
	}
	if r.Status != StatusOkay {
		return "", &ProtocolError{Command: "getvar:" + name, Msg: fmt.Sprintf("unexpected %s reply", r.Status)}
	}
	return r.Value, nil
}

// GetVarAll asks every variable (getvar:all) and parses the INFO lines, "name: value" or "name:value".
// Names may contain colons (partition-size:boot), so the value is what follows the last ": ", or the
// last ":" when there is no ": ".
func (c *Client) GetVarAll(ctx context.Context) (map[string]string, error) {
	r, err := c.Command(ctx, "getvar:all")
	if err != nil {
		return nil, err
	}
	return ParseVarLines(r.Info), nil
}

// ParseVarLines parses getvar:all INFO lines into a map (lines without a colon are skipped).
func ParseVarLines(lines []string) map[string]string {
	vars := make(map[string]string, len(lines))
	for _, l := range lines {
		var name, val string
		if i := strings.LastIndex(l, ": "); i > 0 {
			name, val = l[:i], l[i+2:]
		} else if i := strings.LastIndexByte(l, ':'); i > 0 {
			name, val = l[:i], l[i+1:]
		} else {
			continue
		}
		vars[strings.TrimSpace(name)] = strings.TrimSpace(val)
	}
	return vars
}

// Download sends size bytes from r into the device's download buffer (download:%08x, DATA, the bytes,
// OKAY). Progress is reported on task (nil is fine) as bytes are handed to the transport.
func (c *Client) Download(ctx context.Context, r io.Reader, size int64, task progress.Task) error {
	if size < 0 || size > 0xffffffff {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("fastboot: download of %d bytes: the protocol carries 0 to 4 GiB-1 per download", size))
	}
	if task == nil {
		task = progress.Discard.Task("", 0)
	}
	cmd := fmt.Sprintf("download:%08x", size)
	c.mu.Lock()
	defer c.mu.Unlock()
	start := time.Now()
	done, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := c.send(ctx, cmd); err != nil {
		return err
	}
	rep, err := c.await(ctx, cmd, c.timeout)
	if err != nil {
		return err
	}
	if rep.Status != StatusData {
		c.broken = &ProtocolError{Command: cmd, Msg: "no DATA reply"}
		return c.broken
	}
	if rep.DataSize != size {
		// The device now expects a different number of bytes than we have: nothing sensible follows.
		c.broken = &ProtocolError{Command: cmd, Msg: fmt.Sprintf("device asked for %d bytes, not %d", rep.DataSize, size)}
		return c.broken
	}
	if c.dbuf == nil {
		c.dbuf = make([]byte, chunkSize)
	}
	var sent int64
	for sent < size {
		k := min(int64(len(c.dbuf)), size-sent)
		if _, err := io.ReadFull(r, c.dbuf[:k]); err != nil {
			// The device waits for bytes we cannot give: the connection cannot be reused.
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			c.broken = err
			return fmt.Errorf("fastboot: %s: reading the image after %d of %d bytes: %w", cmd, sent, size, err)
		}
		if err := c.arm(ctx, c.timeout); err != nil {
			return c.ioError(ctx, cmd, c.timeout, err)
		}
		if _, err := c.t.Write(c.dbuf[:k]); err != nil {
			return c.ioError(ctx, fmt.Sprintf("%s (after %d of %d bytes)", cmd, sent, size), c.timeout, err)
		}
		sent += k
		task.Add(k)
	}
	c.logf("   [%d bytes]", size)
	rep, err = c.await(ctx, cmd, c.slow)
	if err != nil {
		return err
	}
	if rep.Status != StatusOkay {
		c.broken = &ProtocolError{Command: cmd, Msg: fmt.Sprintf("unexpected %s reply after the data", rep.Status)}
		return c.broken
	}
	c.stats.Downloads++
	c.stats.DownloadBytes += size
	c.stats.DownloadTime += time.Since(start)
	return nil
}

// Upload fetches the device's staged buffer (upload, DATA, the bytes, OKAY) into w, as
// `fastboot get_staged` does.
func (c *Client) Upload(ctx context.Context, w io.Writer) (int64, error) {
	const cmd = "upload"
	c.mu.Lock()
	defer c.mu.Unlock()
	done, err := c.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	if err := c.send(ctx, cmd); err != nil {
		return 0, err
	}
	rep, err := c.await(ctx, cmd, c.timeout)
	if err != nil {
		return 0, err
	}
	if rep.Status != StatusData {
		c.broken = &ProtocolError{Command: cmd, Msg: "no DATA reply"}
		return 0, c.broken
	}
	if c.dbuf == nil {
		c.dbuf = make([]byte, chunkSize)
	}
	var got int64
	for got < rep.DataSize {
		if err := c.arm(ctx, c.timeout); err != nil {
			return got, c.ioError(ctx, cmd, c.timeout, err)
		}
		k := min(int64(len(c.dbuf)), rep.DataSize-got)
		n, err := c.t.Read(c.dbuf[:k])
		if err != nil {
			return got, c.ioError(ctx, fmt.Sprintf("%s (after %d of %d bytes)", cmd, got, rep.DataSize), c.timeout, err)
		}
		if _, err := w.Write(c.dbuf[:n]); err != nil {
			c.broken = err
			return got, fmt.Errorf("fastboot: upload: writing the data: %w", err)
		}
		got += int64(n)
	}
	c.logf("   [%d bytes]", got)
	rep, err = c.await(ctx, cmd, c.timeout)
	if err != nil {
		return got, err
	}
	if rep.Status != StatusOkay {
		c.broken = &ProtocolError{Command: cmd, Msg: fmt.Sprintf("unexpected %s reply after the data", rep.Status)}
		return got, c.broken
	}
	return got, nil
}

// Flash writes the downloaded buffer to a partition (flash:P).
func (c *Client) Flash(ctx context.Context, partition string) error {
	start := time.Now()
	err := c.okay(ctx, "flash:"+partition, c.slow)
	if err == nil {
		c.mu.Lock()
		c.stats.Flashes++
		c.stats.FlashTime += time.Since(start)
		c.mu.Unlock()
	}
	return err
}

// Erase erases a partition (erase:P).
func (c *Client) Erase(ctx context.Context, partition string) error {
	return c.okay(ctx, "erase:"+partition, c.slow)
}

// SetActive makes a slot ("a" or "b") the one to boot (set_active:S).
func (c *Client) SetActive(ctx context.Context, slot string) error {
	return c.okay(ctx, "set_active:"+strings.TrimPrefix(slot, "_"), c.slow)
}

// Reboot restarts the device: target "" boots Android, "bootloader", "fastboot" (fastbootd, userspace)
// or "recovery". The device drops the connection afterwards: dial again to continue.
func (c *Client) Reboot(ctx context.Context, target string) error {
	cmd := "reboot"
	switch target {
	case "":
	case "bootloader", "fastboot", "recovery":
		cmd += "-" + target
	default:
		return failure.Kinded(failure.ErrUsage, fmt.Errorf("fastboot: reboot target %q: want \"\", bootloader, fastboot or recovery", target))
	}
	err := c.okay(ctx, cmd, c.timeout)
	if err != nil && errors.Is(err, io.EOF) {
		// Some bootloaders reset before the OKAY leaves: the command was delivered.
		return nil
	}
	return err
}

// Oem sends "oem ARGS" and returns the reply with its INFO lines (what `fastboot oem` prints).
func (c *Client) Oem(ctx context.Context, args string) (Reply, error) {
	return c.command(ctx, "oem "+args, c.slow)
}

// Flashing sends "flashing ARGS" (unlock, lock, get_unlock_ability, unlock_critical…).
func (c *Client) Flashing(ctx context.Context, args string) (Reply, error) {
	return c.command(ctx, "flashing "+args, c.slow)
}

// CreateLogicalPartition creates a logical partition in super (fastbootd).
func (c *Client) CreateLogicalPartition(ctx context.Context, name string, size int64) error {
	return c.okay(ctx, "create-logical-partition:"+name+":"+strconv.FormatInt(size, 10), c.slow)
}

// DeleteLogicalPartition deletes a logical partition (fastbootd).
func (c *Client) DeleteLogicalPartition(ctx context.Context, name string) error {
	return c.okay(ctx, "delete-logical-partition:"+name, c.slow)
}

// ResizeLogicalPartition resizes a logical partition (fastbootd), as the AOSP client does before
// flashing one.
func (c *Client) ResizeLogicalPartition(ctx context.Context, name string, size int64) error {
	return c.okay(ctx, "resize-logical-partition:"+name+":"+strconv.FormatInt(size, 10), c.slow)
}

// UpdateSuper writes the downloaded super metadata (super_empty.img) to the super partition name;
// wipe discards the existing logical partitions' layout.
func (c *Client) UpdateSuper(ctx context.Context, name string, wipe bool) error {
	cmd := "update-super:" + name
	if wipe {
		cmd += ":wipe"
	}
	return c.okay(ctx, cmd, c.slow)
}

// SnapshotUpdate runs a Virtual A/B snapshot action ("cancel" or "merge").
func (c *Client) SnapshotUpdate(ctx context.Context, action string) error {
	return c.okay(ctx, "snapshot-update:"+action, c.slow)
}
