package fastboot

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/romforge/romforge/internal/failure"
)

// UDP packet ids and flags (AOSP fastboot/udp.cpp's format).
const (
	udpIDError    = 0x00
	udpIDQuery    = 0x01
	udpIDInit     = 0x02
	udpIDFastboot = 0x03

	udpFlagContinuation = 0x01

	udpHeaderSize   = 4
	udpVersion      = 1
	udpMinPacket    = 512  // every device must take packets this big
	udpHostPacket   = 8192 // what the AOSP host offers
	udpQueryRetries = 4    // the first query is tried this often before "no device"
)

// UDPOptions tune the host side of fastboot over UDP. Zero values take the AOSP client's settings.
type UDPOptions struct {
	// Retransmit is how long to wait for a packet's answer before sending it again (500 ms).
	Retransmit time.Duration
	// Retries is how often a packet is sent before giving up (120, i.e. a minute).
	Retries int
	// MaxPacket is the packet size offered at init (8192); the smaller of it and the device's is used.
	MaxPacket int
}

func (o *UDPOptions) defaults() {
	if o.Retransmit <= 0 {
		o.Retransmit = 500 * time.Millisecond
	}
	if o.Retries <= 0 {
		o.Retries = 120
	}
	if o.MaxPacket < udpMinPacket || o.MaxPacket > 65507 {
		o.MaxPacket = udpHostPacket
	}
}

// UDPConn is the host side of fastboot over UDP: every packet is [id][flags][seq u16 BE][data], answered
// by exactly one device packet with the same id and seq, resent until it is.
type UDPConn struct {
	c       net.Conn
	opt     UDPOptions
	seq     uint16
	maxData int

	dlMu     sync.Mutex
	deadline time.Time

	pkt     []byte
	rx      []byte
	pending []byte
	pendBuf []byte
}

// DialUDP reaches a device at host:port: query (its sequence number), then init (version, packet size).
func DialUDP(ctx context.Context, addr string, opt *UDPOptions) (*UDPConn, error) {
	var o UDPOptions
	if opt != nil {
		o = *opt
	}
	o.defaults()
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: udp %s: %w", addr, err))
	}
	u := &UDPConn{c: c, opt: o, pkt: make([]byte, o.MaxPacket), rx: make([]byte, 65536)}
	if dl, ok := ctx.Deadline(); ok {
		u.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { u.SetDeadline(time.Unix(1, 0)) })
	err = u.handshake()
	stop()
	u.SetDeadline(time.Time{})
	if err != nil {
		c.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: udp %s: %w", addr, err))
	}
	return u, nil
}

func (u *UDPConn) handshake() error {
	u.seq = 0
	data, _, err := u.exchange(udpIDQuery, 0, nil, udpQueryRetries)
	if err != nil {
		return fmt.Errorf("query: %w (is a fastboot device listening on UDP there?)", err)
	}
	if len(data) < 2 {
		return fmt.Errorf("query: answer of %d bytes carries no sequence number", len(data))
	}
	u.seq = binary.BigEndian.Uint16(data)
	var init [4]byte
	binary.BigEndian.PutUint16(init[0:], udpVersion)
	binary.BigEndian.PutUint16(init[2:], uint16(u.opt.MaxPacket))
	data, _, err = u.exchange(udpIDInit, 0, init[:], u.opt.Retries)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if len(data) < 4 {
		return fmt.Errorf("init: answer of %d bytes is too short", len(data))
	}
	ver, size := binary.BigEndian.Uint16(data), int(binary.BigEndian.Uint16(data[2:]))
	if ver < 1 {
		return fmt.Errorf("init: device speaks protocol version %d", ver)
	}
	if size < udpMinPacket {
		return fmt.Errorf("init: device packet size %d is below the minimum %d", size, udpMinPacket)
	}
	u.maxData = min(size, u.opt.MaxPacket) - udpHeaderSize
	return nil
}

// exchange sends one packet and waits for its answer (same id and seq), resending as needed. Query
// answers keep the sequence number; every other exchange advances it.
func (u *UDPConn) exchange(id, flags byte, data []byte, tries int) ([]byte, byte, error) {
	p := u.pkt[:udpHeaderSize+len(data)]
	p[0], p[1] = id, flags
	binary.BigEndian.PutUint16(p[2:], u.seq)
	copy(p[udpHeaderSize:], data)
	var lastErr error
	for try := 0; try < tries; try++ {
		u.dlMu.Lock()
		dl := u.deadline
		u.dlMu.Unlock()
		now := time.Now()
		if !dl.IsZero() && !now.Before(dl) {
			return nil, 0, os.ErrDeadlineExceeded
		}
		wait := now.Add(u.opt.Retransmit)
		if !dl.IsZero() && dl.Before(wait) {
			wait = dl
		}
		if _, err := u.c.Write(p); err != nil {
			lastErr = err
			time.Sleep(time.Until(wait))
			continue
		}
		u.c.SetReadDeadline(wait)
		for {
			n, err := u.c.Read(u.rx)
			if err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					lastErr = err // e.g. ECONNREFUSED while the device restarts: keep trying
					time.Sleep(time.Until(wait))
				}
				break
			}
			if n < udpHeaderSize || binary.BigEndian.Uint16(u.rx[2:]) != u.seq {
				continue // stale answer to an earlier resend
			}
			if u.rx[0] == udpIDError {
				return nil, 0, fmt.Errorf("device error packet: %q", u.rx[udpHeaderSize:n])
			}
			if u.rx[0] != id {
				continue
			}
			if id != udpIDQuery {
				u.seq++
			}
			return u.rx[udpHeaderSize:n], u.rx[1], nil
		}
	}
	if lastErr != nil {
		return nil, 0, fmt.Errorf("no answer after %d tries: %w", tries, lastErr)
	}
	return nil, 0, fmt.Errorf("no answer after %d tries of %v: %w", tries, u.opt.Retransmit, os.ErrDeadlineExceeded)
}

// Write sends p as one message, cut into packets with the continuation flag.
func (u *UDPConn) Write(p []byte) (int, error) {
	sent := 0
	for sent < len(p) {
		k := min(u.maxData, len(p)-sent)
		var flags byte
		if sent+k < len(p) {
			flags = udpFlagContinuation
		}
		if _, _, err := u.exchange(udpIDFastboot, flags, p[sent:sent+k], u.opt.Retries); err != nil {
			return sent, err
		}
		sent += k
	}
	return sent, nil
}

// Read asks the device for data (an empty packet) and returns what it sends; a message longer than a
// packet comes over several Reads.
func (u *UDPConn) Read(p []byte) (int, error) {
	for len(u.pending) == 0 {
		data, _, err := u.exchange(udpIDFastboot, 0, nil, u.opt.Retries)
		if err != nil {
			return 0, err
		}
		if len(data) == 0 {
			continue // nothing yet, or an empty last piece: ask again
		}
		if len(data) <= len(p) {
			return copy(p, data), nil
		}
		u.pendBuf = append(u.pendBuf[:0], data...)
		u.pending = u.pendBuf
	}
	n := copy(p, u.pending)
	u.pending = u.pending[n:]
	return n, nil
}

// SetDeadline bounds every later exchange (resends included) by d; a past d stops a waiting one.
func (u *UDPConn) SetDeadline(d time.Time) error {
	u.dlMu.Lock()
	u.deadline = d
	u.dlMu.Unlock()
	if !d.IsZero() && time.Until(d) < u.opt.Retransmit {
		u.c.SetReadDeadline(d)
	}
	return nil
}

// Close closes the socket (UDP has no goodbye).
func (u *UDPConn) Close() error { return u.c.Close() }

// UDPListener is the device side of fastboot over UDP. Like a phone it talks to one host at a time: an
// init from a new host ends the previous session.
type UDPListener struct {
	pc        *net.UDPConn
	maxPacket int

	mu     sync.Mutex
	sess   *udpSession
	accept chan *udpSession
	done   chan struct{}
	once   sync.Once
}

// ListenUDP listens on host:port with the given largest packet the device accepts (0 → 8192).
func ListenUDP(addr string, maxPacket int) (*UDPListener, error) {
	if maxPacket < udpMinPacket || maxPacket > 65507 {
		maxPacket = udpHostPacket
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: listen udp %s: %w", addr, err))
	}
	pc, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: listen udp %s: %w", addr, err))
	}
	pc.SetReadBuffer(4 << 20)
	l := &UDPListener{pc: pc, maxPacket: maxPacket, accept: make(chan *udpSession, 4), done: make(chan struct{})}
	go l.loop()
	return l, nil
}

// Accept returns the next host session after its init.
func (l *UDPListener) Accept() (Transport, error) {
	select {
	case s := <-l.accept:
		return s, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Addr is the listening address.
func (l *UDPListener) Addr() net.Addr { return l.pc.LocalAddr() }

// Close stops the listener and its session.
func (l *UDPListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.pc.Close()
		l.mu.Lock()
		if l.sess != nil {
			l.sess.closeLocked()
		}
		l.mu.Unlock()
	})
	return nil
}

func sameAddr(a, b *net.UDPAddr) bool { return a.Port == b.Port && a.IP.Equal(b.IP) }

func (l *UDPListener) send(p []byte, to *net.UDPAddr) { l.pc.WriteToUDP(p, to) }

func (l *UDPListener) sendError(seq uint16, msg string, to *net.UDPAddr) {
	p := make([]byte, udpHeaderSize, udpHeaderSize+len(msg))
	p[0] = udpIDError
	binary.BigEndian.PutUint16(p[2:], seq)
	l.send(append(p, msg...), to)
}

func (l *UDPListener) loop() {
	buf := make([]byte, 65536)
	for {
		n, from, err := l.pc.ReadFromUDP(buf)
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if n < udpHeaderSize {
			continue
		}
		id, flags, seq := buf[0], buf[1], binary.BigEndian.Uint16(buf[2:])
		_ = flags
		switch id {
		case udpIDQuery:
			l.mu.Lock()
			var next uint16
			if s := l.sess; s != nil && sameAddr(s.addr, from) {
				next = s.expected
			}
			l.mu.Unlock()
			p := []byte{udpIDQuery, 0, buf[2], buf[3], byte(next >> 8), byte(next)}
			l.send(p, from)
		case udpIDInit:
			l.handleInit(buf[:n], seq, from)
		case udpIDFastboot:
			if !l.handleFastboot(buf[:n], seq, from) {
				return
			}
		default:
			l.sendError(seq, "unknown packet id", from)
		}
	}
}

func (l *UDPListener) handleInit(p []byte, seq uint16, from *net.UDPAddr) {
	l.mu.Lock()
	if s := l.sess; s != nil && sameAddr(s.addr, from) && seq == s.expected-1 && s.last != nil {
		l.send(s.last, from) // our answer was lost
		l.mu.Unlock()
		return
	}
	if len(p) < udpHeaderSize+4 {
		l.mu.Unlock()
		l.sendError(seq, "init packet too short", from)
		return
	}
	hostMax := int(binary.BigEndian.Uint16(p[6:]))
	size := min(hostMax, l.maxPacket)
	if size < udpMinPacket {
		l.mu.Unlock()
		l.sendError(seq, fmt.Sprintf("packet size %d below %d", hostMax, udpMinPacket), from)
		return
	}
	old := l.sess
	if old != nil {
		old.closeLocked()
	}
	s := &udpSession{l: l, addr: from, maxData: size - udpHeaderSize, expected: seq + 1,
		in: make(chan []byte, 256), closed: make(chan struct{})}
	s.cond = sync.NewCond(&l.mu)
	ans := []byte{udpIDInit, 0, p[2], p[3], 0, udpVersion, byte(size >> 8), byte(size)}
	s.last = ans
	l.sess = s
	l.mu.Unlock()
	l.send(ans, from)
	select {
	case l.accept <- s:
	default:
		s.Close() // nobody is accepting: refuse rather than queue forever
	}
}

// handleFastboot processes one fastboot packet; false means the listener is closing.
func (l *UDPListener) handleFastboot(p []byte, seq uint16, from *net.UDPAddr) bool {
	l.mu.Lock()
	s := l.sess
	if s == nil || !sameAddr(s.addr, from) {
		l.mu.Unlock()
		l.sendError(seq, "no session: send query and init first", from)
		return true
	}
	if seq == s.expected-1 && s.last != nil {
		l.send(s.last, from) // the host missed our answer
		l.mu.Unlock()
		return true
	}
	if seq != s.expected {
		l.mu.Unlock()
		return true
	}
	if s.isDone && len(p) > udpHeaderSize {
		// The device hung up (reboot, fault): tell the host at once instead of letting it resend.
		l.mu.Unlock()
		l.sendError(seq, "connection closed by the device", from)
		return true
	}
	if len(p) > udpHeaderSize {
		data := append([]byte(nil), p[udpHeaderSize:]...)
		l.mu.Unlock()
		select {
		case s.in <- data:
		case <-s.closed:
			return true // not acknowledged: the host sees the session end
		case <-l.done:
			return false
		}
		l.mu.Lock()
		if l.sess == s && s.expected == seq {
			s.expected++
			s.last = []byte{udpIDFastboot, 0, p[2], p[3]}
			l.send(s.last, from)
		}
		l.mu.Unlock()
		return true
	}
	// An empty packet asks for the device's next data.
	if s.isDone && s.outBytes == 0 {
		l.mu.Unlock()
		l.sendError(seq, "connection closed by the device", from)
		return true
	}
	if !s.readPending {
		if s.outBytes > 0 {
			s.sendChunkLocked(seq)
		} else {
			s.readPending, s.pendingSeq = true, seq
		}
	}
	l.mu.Unlock()
	return true
}

// udpSession is one host's connection on the device side: Read returns the host's data packet by
// packet, Write queues a message that goes out as the host asks for it.
type udpSession struct {
	l        *UDPListener
	addr     *net.UDPAddr
	maxData  int
	expected uint16
	last     []byte

	in     chan []byte
	rbuf   []byte
	closed chan struct{}
	isDone bool

	// Guarded by l.mu.
	cond        *sync.Cond
	out         [][]byte
	outOff      int
	outBytes    int
	readPending bool
	pendingSeq  uint16
}

// maxQueued bounds what Write queues before it waits for the host to read.
const maxQueued = 4 << 20

func (s *udpSession) sendChunkLocked(seq uint16) {
	msg := s.out[0]
	k := min(s.maxData, len(msg)-s.outOff)
	p := make([]byte, udpHeaderSize+k)
	p[0] = udpIDFastboot
	binary.BigEndian.PutUint16(p[2:], seq)
	copy(p[udpHeaderSize:], msg[s.outOff:s.outOff+k])
	s.outOff += k
	if s.outOff < len(msg) {
		p[1] = udpFlagContinuation
	} else {
		s.out[0] = nil
		s.out = s.out[1:]
		s.outOff = 0
		s.outBytes -= len(msg)
		s.cond.Broadcast()
	}
	s.last = p
	s.expected = seq + 1
	s.l.send(p, s.addr)
}

// Read returns the next piece of data the host sent.
func (s *udpSession) Read(p []byte) (int, error) {
	if len(s.rbuf) == 0 {
		select {
		case d := <-s.in:
			s.rbuf = d
		case <-s.closed:
			return 0, io.EOF
		}
	}
	n := copy(p, s.rbuf)
	s.rbuf = s.rbuf[n:]
	return n, nil
}

// Write queues p as one message for the host.
func (s *udpSession) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	l := s.l
	l.mu.Lock()
	defer l.mu.Unlock()
	for s.outBytes > maxQueued && !s.isDone {
		s.cond.Wait()
	}
	if s.isDone {
		return 0, net.ErrClosed
	}
	s.out = append(s.out, append([]byte(nil), p...))
	s.outBytes += len(p)
	if s.readPending {
		s.readPending = false
		s.sendChunkLocked(s.pendingSeq)
	}
	return len(p), nil
}

// Close ends the session for the device; replies already queued still go out when the host asks.
func (s *udpSession) Close() error {
	s.l.mu.Lock()
	s.closeLocked()
	s.l.mu.Unlock()
	return nil
}

func (s *udpSession) closeLocked() {
	if !s.isDone {
		s.isDone = true
		close(s.closed)
		s.cond.Broadcast()
	}
}
