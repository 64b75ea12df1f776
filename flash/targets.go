package flash

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/romforge/romforge/flash/fastboot"
	"github.com/romforge/romforge/internal/failure"
)

// maxSerialsFile bounds a serials file: a shop lists at most a few thousand phones, and reading an
// unbounded file into memory because someone pointed --serials-file at a disk image helps no one.
const maxSerialsFile = 1 << 20

// usbPort matches a Linux USB port path (bus-port[.port…]), the form `fastboot devices -l` prints.
var usbPort = regexp.MustCompile(`^[0-9]+-[0-9]+(\.[0-9]+)*$`)

// NormalizeSerial checks one serial as `fastboot -s` takes it and returns the form the transports
// dial: "tcp:HOST[:PORT]" and "udp:HOST[:PORT]" with their port filled in, a USB serial as it is
// ("usb:SERIAL" is accepted and stripped, so lists can name every transport explicitly), and
// "usb:PORT" (usb:1-2.3, where the phone is plugged in, as AOSP fastboot names devices) kept as it is:
// that is how phones sharing a serial are told apart.
func NormalizeSerial(s string) (string, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "usb:"); ok {
		if usbPort.MatchString(rest) {
			return s, nil
		}
		s = rest
		if s == "" || strings.ContainsAny(s, " \t:") {
			return "", failure.Kinded(failure.ErrUsage, fmt.Errorf("flash: %q: want usb:SERIAL (the serial 'romforge fastboot devices' prints)", "usb:"+rest))
		}
		return s, nil
	}
	if s == "" {
		return "", failure.Kinded(failure.ErrUsage, errors.New("flash: an empty serial: give a USB serial, tcp:HOST[:PORT] or udp:HOST[:PORT]"))
	}
	network, addr, isNet, err := fastboot.ParseNetSerial(s)
	if err != nil {
		return "", err
	}
	if isNet {
		return network + ":" + addr, nil
	}
	if strings.ContainsAny(s, " \t") {
		return "", failure.Kinded(failure.ErrUsage, fmt.Errorf("flash: serial %q contains blanks: one serial per --serial or per line", s))
	}
	return s, nil
}

// SplitSerials expands --serial values: each may be one serial or a comma-separated list (no USB
// serial or host name contains a comma, and "-s a,b" silently meaning one host was a trap).
func SplitSerials(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			if strings.TrimSpace(s) == "" {
				continue
			}
			n, err := NormalizeSerial(s)
			if err != nil {
				return nil, err
			}
			out = append(out, n)
		}
	}
	return out, nil
}

// ReadSerialsFile reads one serial per line; blank lines and '#' comments are ignored. A bad line is a
// usage error naming the file and line.
func ReadSerialsFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("flash: serials file: %w", err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSerialsFile+1))
	if err != nil {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("flash: serials file %s: %w", path, err))
	}
	if len(b) > maxSerialsFile {
		return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("flash: serials file %s is over %d bytes: it should hold one serial per line", path, maxSerialsFile))
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxSerialsFile)
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		if strings.TrimSpace(text) == "" {
			continue
		}
		s, err := NormalizeSerial(text)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// TargetOptions say which phones a batch flashes.
type TargetOptions struct {
	// Serials are --serial values (repeatable; comma lists allowed).
	Serials []string
	// SerialsFile lists more serials, one a line.
	SerialsFile string
	// All adds every fastboot phone on USB.
	All bool
	// ListUSB lists the USB fastboot phones' serials (needed with All).
	ListUSB func(ctx context.Context) ([]string, error)
}

// Targets returns the phones to flash, each once, in the order given: --serial values, then the
// serials file, then (with All) the USB phones not named yet.
func Targets(ctx context.Context, opt TargetOptions) ([]string, error) {
	list, err := SplitSerials(opt.Serials)
	if err != nil {
		return nil, err
	}
	if opt.SerialsFile != "" {
		more, err := ReadSerialsFile(opt.SerialsFile)
		if err != nil {
			return nil, err
		}
		list = append(list, more...)
	}
	if opt.All {
		if opt.ListUSB == nil {
			return nil, failure.Kinded(failure.ErrIO, errors.New("flash --all: USB device listing is not available in this build; name phones with --serial"))
		}
		usbs, err := opt.ListUSB(ctx)
		if err != nil {
			return nil, fmt.Errorf("flash --all: listing USB phones: %w", err)
		}
		list = append(list, usbs...)
	}
	return dedupe(list), nil
}

func dedupe(list []string) []string {
	seen := map[string]bool{}
	out := list[:0:0]
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Transport names how a serial is reached: usb, tcp or udp.
func Transport(serial string) string {
	switch {
	case strings.HasPrefix(serial, "tcp:"):
		return "tcp"
	case strings.HasPrefix(serial, "udp:"):
		return "udp"
	}
	return "usb"
}
