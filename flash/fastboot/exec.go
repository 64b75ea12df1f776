package fastboot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/romforge/romforge/internal/failure"
)

// ExecTransport carries the protocol through an AOSP fastboot binary (platform-tools), one process per
// command: the fallback where romforge has no USB access of its own (macOS, or a machine whose driver
// only platform-tools can use). romforge still plans, checks, journals and reports; the binary only moves
// the bytes. It understands the commands the Client sends: a download is staged in a temporary file and
// handed to `fastboot flash` with the flash command that follows it.
type ExecTransport struct {
	bin, serial string
	tmp         string

	mu       sync.Mutex
	deadline time.Time
	cancel   context.CancelFunc // of the running process
	closed   bool

	replies [][]byte
	dl      *os.File // download data being received
	dlLeft  int64
	staged  string // the last complete download
}

// FindFastboot returns the fastboot binary to drive: $ROMFORGE_FASTBOOT, else fastboot on PATH.
func FindFastboot() (string, error) {
	if p := os.Getenv("ROMFORGE_FASTBOOT"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("fastboot")
	if err != nil {
		return "", failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: no fastboot binary on PATH (install Android platform-tools, or set ROMFORGE_FASTBOOT): %w", err))
	}
	return p, nil
}

// DialExec returns a transport that runs bin ("" → FindFastboot) with -s serial ("" → the only device)
// for every command, after checking that the binary runs.
func DialExec(ctx context.Context, bin, serial string) (*ExecTransport, error) {
	if bin == "" {
		var err error
		if bin, err = FindFastboot(); err != nil {
			return nil, err
		}
	}
	if out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput(); err != nil {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: %s --version: %w (%s)", bin, err, bytes.TrimSpace(out)))
	}
	tmp, err := os.MkdirTemp("", "romforge-exec-")
	if err != nil {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: %w", err))
	}
	return &ExecTransport{bin: bin, serial: serial, tmp: tmp}, nil
}

var remoteFail = regexp.MustCompile(`FAILED \(remote: '(.*)'\)`)

// run runs the binary with args under the transport's deadline; a later past deadline (a canceled
// context) kills it.
func (t *ExecTransport) run(args ...string) (string, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return "", os.ErrClosed
	}
	ctx, cancel := context.WithCancel(context.Background())
	if !t.deadline.IsZero() {
		if time.Until(t.deadline) <= 0 {
			t.mu.Unlock()
			cancel()
			return "", os.ErrDeadlineExceeded
		}
		var c2 context.CancelFunc
		ctx, c2 = context.WithDeadline(ctx, t.deadline)
		defer c2()
	}
	t.cancel = cancel
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.cancel = nil
		t.mu.Unlock()
		cancel()
	}()
	if t.serial != "" {
		args = append([]string{"-s", t.serial}, args...)
	}
	cmd := exec.CommandContext(ctx, t.bin, args...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), os.ErrDeadlineExceeded
	}
	return string(out), err
}

// reply queues the replies for one command from the binary's output.
func (t *ExecTransport) reply(out string, err error, value func(string) string) error {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed) {
		return err
	}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if s, ok := strings.CutPrefix(line, "(bootloader) "); ok {
			t.replies = append(t.replies, []byte(StatusInfo+s))
		}
	}
	if m := remoteFail.FindStringSubmatch(out); m != nil {
		t.replies = append(t.replies, []byte(StatusFail+m[1]))
		return nil
	}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: running %s: %w", t.bin, err))
		}
		last := strings.TrimSpace(out)
		if i := strings.LastIndexByte(last, '\n'); i >= 0 {
			last = last[i+1:]
		}
		return failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: %s failed (%v): %s", t.bin, err, last))
	}
	v := ""
	if value != nil {
		v = value(out)
	}
	t.replies = append(t.replies, []byte(StatusOkay+v))
	return nil
}

// Write takes one command, or a piece of download data.
func (t *ExecTransport) Write(p []byte) (int, error) {
	if t.dl != nil {
		if int64(len(p)) > t.dlLeft {
			return 0, failure.Kinded(failure.ErrInvalid, fmt.Errorf("fastboot: %d bytes of download data, %d expected", len(p), t.dlLeft))
		}
		if _, err := t.dl.Write(p); err != nil {
			return 0, failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: staging download data: %w", err))
		}
		t.dlLeft -= int64(len(p))
		if t.dlLeft == 0 {
			err := t.dl.Close()
			t.dl = nil
			if err != nil {
				return 0, failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: staging download data: %w", err))
			}
			t.staged = filepath.Join(t.tmp, "download.img")
			t.replies = append(t.replies, []byte(StatusOkay))
		}
		return len(p), nil
	}
	if err := t.command(string(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (t *ExecTransport) command(cmd string) error {
	verb, arg, _ := strings.Cut(cmd, ":")
	if strings.HasPrefix(cmd, "oem ") || strings.HasPrefix(cmd, "flashing ") {
		verb, arg, _ = strings.Cut(cmd, " ")
	}
	switch verb {
	case "getvar":
		out, err := t.run("getvar", arg)
		return t.reply(out, err, func(out string) string {
			for _, line := range strings.Split(out, "\n") {
				if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), arg+":"); ok && arg != "all" {
					return strings.TrimSpace(v)
				}
			}
			return ""
		})
	case "download":
		n, err := strconv.ParseUint(arg, 16, 32)
		if err != nil {
			t.replies = append(t.replies, []byte(StatusFail+"invalid download size"))
			return nil
		}
		f, err := os.Create(filepath.Join(t.tmp, "download.img"))
		if err != nil {
			return failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: staging a download: %w", err))
		}
		t.staged = ""
		if n == 0 {
			f.Close()
			t.staged = f.Name()
			t.replies = append(t.replies, []byte(StatusData+fmt.Sprintf("%08x", n)), []byte(StatusOkay))
			return nil
		}
		t.dl, t.dlLeft = f, int64(n)
		t.replies = append(t.replies, []byte(StatusData+fmt.Sprintf("%08x", n)))
		return nil
	case "flash":
		if t.staged == "" {
			t.replies = append(t.replies, []byte(StatusFail+"nothing downloaded to flash"))
			return nil
		}
		out, err := t.run("flash", arg, t.staged)
		return t.reply(out, err, nil)
	case "upload":
		dst := filepath.Join(t.tmp, "upload.img")
		out, err := t.run("get_staged", dst)
		if err != nil {
			return t.reply(out, err, nil)
		}
		b, rerr := os.ReadFile(dst)
		if rerr != nil {
			return failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: upload: %w", rerr))
		}
		t.replies = append(t.replies, []byte(StatusData+fmt.Sprintf("%08x", len(b))), b, []byte(StatusOkay))
		return nil
	}
	args, ok := execArgs(verb, arg)
	if !ok {
		t.replies = append(t.replies, []byte(StatusFail+fmt.Sprintf("romforge cannot send %q through the fastboot binary", cmd)))
		return nil
	}
	out, err := t.run(args...)
	return t.reply(out, err, nil)
}

// execArgs maps a protocol command to the fastboot command line that sends exactly it.
func execArgs(verb, arg string) ([]string, bool) {
	switch verb {
	case "erase", "set_active":
		return []string{verb, arg}, arg != ""
	case "reboot":
		return []string{"reboot"}, arg == ""
	case "reboot-bootloader":
		return []string{"reboot", "bootloader"}, true
	case "reboot-fastboot":
		return []string{"reboot", "fastboot"}, true
	case "reboot-recovery":
		return []string{"reboot", "recovery"}, true
	case "continue":
		return []string{"continue"}, true
	case "oem", "flashing":
		return append([]string{verb}, strings.Fields(arg)...), arg != ""
	case "snapshot-update":
		return []string{"snapshot-update", arg}, arg != ""
	case "create-logical-partition", "resize-logical-partition":
		name, size, ok := strings.Cut(arg, ":")
		return []string{verb, name, size}, ok
	case "delete-logical-partition":
		return []string{verb, arg}, arg != ""
	}
	return nil, false
}

// Read returns the next reply (or piece of upload data).
func (t *ExecTransport) Read(p []byte) (int, error) {
	if len(t.replies) == 0 {
		return 0, failure.Kinded(failure.ErrIO, errors.New("fastboot: no reply pending from the fastboot binary"))
	}
	r := t.replies[0]
	n := copy(p, r)
	if n < len(r) {
		t.replies[0] = r[n:]
	} else {
		t.replies = t.replies[1:]
	}
	return n, nil
}

// SetDeadline bounds the running and later fastboot processes; a past deadline kills the running one.
func (t *ExecTransport) SetDeadline(d time.Time) error {
	t.mu.Lock()
	t.deadline = d
	cancel := t.cancel
	t.mu.Unlock()
	if cancel != nil && !d.IsZero() && time.Until(d) <= 0 {
		cancel()
	}
	return nil
}

// Close kills a running process and removes the staged data.
func (t *ExecTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	cancel := t.cancel
	t.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if t.dl != nil {
		t.dl.Close()
	}
	return os.RemoveAll(t.tmp)
}

var _ io.ReadWriteCloser = (*ExecTransport)(nil)
