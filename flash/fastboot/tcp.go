package fastboot

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/romforge/romforge/internal/failure"
)

// DefaultPort is the fastboot TCP and UDP port.
const DefaultPort = 5554

// handshakeTimeout is how long either end waits for the other's FBxx, as the AOSP client does (2 s),
// with some slack for loaded machines.
const handshakeTimeout = 5 * time.Second

// TCPConn is a fastboot connection over TCP: after the FB01 handshake every message, both ways, is an
// 8-byte big-endian length followed by that many bytes. It serves both ends.
type TCPConn struct {
	c   net.Conn
	r   *bufio.Reader
	rem uint64 // bytes of the current incoming message not yet returned by Read
	hdr [8]byte
}

// DialTCP connects to a device at host:port and performs the host side of the handshake.
func DialTCP(ctx context.Context, addr string) (*TCPConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: tcp %s: %w", addr, err))
	}
	if err := clientHandshake(ctx, c); err != nil {
		c.Close()
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: tcp %s: %w", addr, err))
	}
	return newTCPConn(c), nil
}

func newTCPConn(c net.Conn) *TCPConn {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return &TCPConn{c: c, r: bufio.NewReaderSize(c, 64<<10)}
}

func clientHandshake(ctx context.Context, c net.Conn) error {
	dl := time.Now().Add(handshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	c.SetDeadline(dl)
	defer c.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write([]byte("FB01")); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	var b [4]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("handshake: no FBxx answer (is this a fastboot device in TCP mode?): %w", err)
	}
	if b[0] != 'F' || b[1] != 'B' || !isDigit(b[2]) || !isDigit(b[3]) || (b[2] == '0' && b[3] == '0') {
		return fmt.Errorf("handshake: answer %q is not FBxx: the target may not support TCP fastboot", b[:])
	}
	return nil
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// Write sends p as one message.
func (t *TCPConn) Write(p []byte) (int, error) {
	binary.BigEndian.PutUint64(t.hdr[:], uint64(len(p)))
	bufs := net.Buffers{t.hdr[:], p}
	if _, err := bufs.WriteTo(t.c); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Read returns the next message, or the next part of a message longer than p. Empty messages are
// skipped.
func (t *TCPConn) Read(p []byte) (int, error) {
	for t.rem == 0 {
		if _, err := io.ReadFull(t.r, t.hdr[:]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
		t.rem = binary.BigEndian.Uint64(t.hdr[:])
	}
	if len(p) == 0 {
		return 0, nil
	}
	k := uint64(len(p))
	if k > t.rem {
		k = t.rem
	}
	n, err := io.ReadFull(t.r, p[:k])
	t.rem -= uint64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// SetDeadline sets the read and write deadline of the connection.
func (t *TCPConn) SetDeadline(d time.Time) error { return t.c.SetDeadline(d) }

// Close closes the connection.
func (t *TCPConn) Close() error { return t.c.Close() }

// RemoteAddr is the peer's address.
func (t *TCPConn) RemoteAddr() net.Addr { return t.c.RemoteAddr() }

// Listener accepts fastboot connections on the device side (TCP or UDP).
type Listener interface {
	// Accept waits for the next host and returns its connection after the handshake.
	Accept() (Transport, error)
	Addr() net.Addr
	Close() error
}

// TCPListener is the device side of fastboot over TCP.
type TCPListener struct {
	l net.Listener
}

// ListenTCP listens on host:port ("127.0.0.1:0" picks a free port).
func ListenTCP(addr string) (*TCPListener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: listen tcp %s: %w", addr, err))
	}
	return &TCPListener{l: l}, nil
}

// Accept returns the next connection whose handshake succeeded; hosts that fail it are dropped.
func (l *TCPListener) Accept() (Transport, error) {
	for {
		c, err := l.l.Accept()
		if err != nil {
			return nil, err
		}
		if err := serverHandshake(c); err != nil {
			c.Close()
			continue
		}
		return newTCPConn(c), nil
	}
}

func serverHandshake(c net.Conn) error {
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	defer c.SetDeadline(time.Time{})
	var b [4]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return err
	}
	if b[0] != 'F' || b[1] != 'B' || !isDigit(b[2]) || !isDigit(b[3]) {
		return fmt.Errorf("bad handshake %q", b[:])
	}
	_, err := c.Write([]byte("FB01"))
	return err
}

// Addr is the listening address.
func (l *TCPListener) Addr() net.Addr { return l.l.Addr() }

// Close stops listening.
func (l *TCPListener) Close() error { return l.l.Close() }
