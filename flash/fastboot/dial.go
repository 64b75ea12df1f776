package fastboot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/romforge/romforge/flash/usb"
	"github.com/romforge/romforge/internal/failure"
)

// ParseNetSerial splits a network serial "tcp:HOST[:PORT]" or "udp:HOST[:PORT]" (IPv6 hosts in
// brackets) into network and host:port, filling in DefaultPort. ok is false for anything else (a USB
// serial number).
func ParseNetSerial(serial string) (network, addr string, ok bool, err error) {
	var rest string
	switch {
	case strings.HasPrefix(serial, "tcp:"):
		network, rest = "tcp", serial[4:]
	case strings.HasPrefix(serial, "udp:"):
		network, rest = "udp", serial[4:]
	default:
		return "", "", false, nil
	}
	if rest == "" {
		return "", "", true, failure.Kinded(failure.ErrUsage, fmt.Errorf("fastboot: serial %q has no host (want %s:HOST[:PORT])", serial, network))
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		// No port (or a bare IPv6 address).
		host, port = strings.TrimSuffix(strings.TrimPrefix(rest, "["), "]"), strconv.Itoa(DefaultPort)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 || host == "" {
		return "", "", true, failure.Kinded(failure.ErrUsage, fmt.Errorf("fastboot: serial %q: want %s:HOST[:PORT] with a port of 1-65535", serial, network))
	}
	return network, net.JoinHostPort(host, strconv.Itoa(p)), true, nil
}

// Dial opens a transport to the device named like `fastboot -s`: "tcp:HOST[:PORT]", "udp:HOST[:PORT]"
// (default port 5554), "exec:SERIAL" (through the platform-tools fastboot binary, see ExecTransport), or
// a USB serial number ("" takes the only fastboot device on USB; where this build has no USB access the
// fastboot binary on PATH is used).
func Dial(ctx context.Context, serial string) (Transport, error) {
	network, addr, isNet, err := ParseNetSerial(serial)
	if err != nil {
		return nil, err
	}
	if isNet {
		if network == "tcp" {
			return DialTCP(ctx, addr)
		}
		return DialUDP(ctx, addr, nil)
	}
	if rest, ok := strings.CutPrefix(serial, "exec:"); ok {
		return DialExec(ctx, "", rest)
	}
	d, err := usb.Open(serial)
	if errors.Is(err, usb.ErrUnsupported) {
		// No USB of our own on this system: platform-tools' fastboot moves the bytes, when installed.
		if bin, ferr := FindFastboot(); ferr == nil {
			return DialExec(ctx, bin, serial)
		}
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Listen opens the device side of a network transport: "tcp:HOST:PORT" or "udp:HOST:PORT".
func Listen(addr string) (Listener, error) {
	network, hp, ok, err := ParseNetSerial(addr)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("fastboot: listen address %q: want tcp:HOST:PORT or udp:HOST:PORT", addr))
	}
	if network == "tcp" {
		return ListenTCP(hp)
	}
	return ListenUDP(hp, 0)
}
