package fastboot

import (
	"io"
	"os"
	"sync"
	"time"
)

// Pipe returns the two ends of an in-memory transport (host, device) that keeps message boundaries,
// for tests and in-process emulators. Closing either end closes both.
func Pipe() (host, device Transport) {
	a2b, b2a := make(chan []byte, 16), make(chan []byte, 16)
	shared := &pipeShared{closed: make(chan struct{})}
	return &pipeEnd{in: b2a, out: a2b, sh: shared, wake: make(chan struct{})},
		&pipeEnd{in: a2b, out: b2a, sh: shared, wake: make(chan struct{})}
}

type pipeShared struct {
	closed chan struct{}
	once   sync.Once
}

type pipeEnd struct {
	in   <-chan []byte
	out  chan<- []byte
	sh   *pipeShared
	rbuf []byte

	mu   sync.Mutex
	dl   time.Time
	wake chan struct{} // closed and replaced when the deadline changes
}

func (p *pipeEnd) deadline() (<-chan time.Time, <-chan struct{}, func()) {
	p.mu.Lock()
	dl, wake := p.dl, p.wake
	p.mu.Unlock()
	if dl.IsZero() {
		return nil, wake, func() {}
	}
	t := time.NewTimer(time.Until(dl))
	return t.C, wake, func() { t.Stop() }
}

func (p *pipeEnd) Read(b []byte) (int, error) {
	for len(p.rbuf) == 0 {
		tc, wake, stop := p.deadline()
		select {
		case m := <-p.in:
			p.rbuf = m
		case <-p.sh.closed:
			stop()
			select { // deliver what was sent before the close
			case m := <-p.in:
				p.rbuf = m
				continue
			default:
			}
			return 0, io.EOF
		case <-tc:
			stop()
			return 0, os.ErrDeadlineExceeded
		case <-wake:
		}
		stop()
	}
	n := copy(b, p.rbuf)
	p.rbuf = p.rbuf[n:]
	return n, nil
}

func (p *pipeEnd) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	m := append([]byte(nil), b...)
	for {
		tc, wake, stop := p.deadline()
		select {
		case <-p.sh.closed:
			stop()
			return 0, io.ErrClosedPipe
		default:
		}
		select {
		case p.out <- m:
			stop()
			return len(b), nil
		case <-p.sh.closed:
			stop()
			return 0, io.ErrClosedPipe
		case <-tc:
			stop()
			return 0, os.ErrDeadlineExceeded
		case <-wake:
			stop()
		}
	}
}

// SetDeadline bounds Read and Write; a past time stops a blocked call.
func (p *pipeEnd) SetDeadline(t time.Time) error {
	p.mu.Lock()
	p.dl = t
	close(p.wake)
	p.wake = make(chan struct{})
	p.mu.Unlock()
	return nil
}

func (p *pipeEnd) Close() error {
	p.sh.once.Do(func() { close(p.sh.closed) })
	return nil
}
