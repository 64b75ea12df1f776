package fastboot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/progress"
)

// One suite, many transports: every pair (host end, device end) must carry the protocol the same way.

type pair struct {
	name string
	// open returns a connected host transport and starts serve on the device end.
	open func(t *testing.T, serve func(Transport)) Transport
}

func pairs() []pair {
	return []pair{
		{"pipe", func(t *testing.T, serve func(Transport)) Transport {
			h, d := Pipe()
			go serve(d)
			return h
		}},
		{"tcp", func(t *testing.T, serve func(Transport)) Transport {
			l, err := ListenTCP("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			go acceptOne(l, serve)
			h, err := DialTCP(context.Background(), l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			return h
		}},
		{"udp", func(t *testing.T, serve func(Transport)) Transport {
			l, err := ListenUDP("127.0.0.1:0", 1024)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			go acceptOne(l, serve)
			h, err := DialUDP(context.Background(), l.Addr().String(), &UDPOptions{Retransmit: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			return h
		}},
		{"udp-lossy", func(t *testing.T, serve func(Transport)) Transport {
			l, err := ListenUDP("127.0.0.1:0", 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			go acceptOne(l, serve)
			proxy := lossyProxy(t, l.Addr().(*net.UDPAddr), 0.05)
			h, err := DialUDP(context.Background(), proxy, &UDPOptions{Retransmit: 10 * time.Millisecond, Retries: 200})
			if err != nil {
				t.Fatal(err)
			}
			return h
		}},
	}
}

func acceptOne(l Listener, serve func(Transport)) {
	t, err := l.Accept()
	if err == nil {
		serve(t)
	}
}

// lossyProxy forwards UDP packets both ways, dropping each with probability p (seeded: reproducible).
func lossyProxy(t *testing.T, to *net.UDPAddr, p float64) string {
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close(); back.Close() })
	var mu sync.Mutex
	rng := rand.New(rand.NewSource(1))
	drop := func() bool { mu.Lock(); defer mu.Unlock(); return rng.Float64() < p }
	var client *net.UDPAddr
	var cmu sync.Mutex
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			cmu.Lock()
			client = from
			cmu.Unlock()
			if !drop() {
				back.Write(buf[:n])
			}
		}
	}()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			cmu.Lock()
			c := client
			cmu.Unlock()
			if c != nil && !drop() {
				front.WriteToUDP(buf[:n], c)
			}
		}
	}()
	return front.LocalAddr().String()
}

// testDevice is a minimal scripted device for the transport suite.
func testDevice(upload []byte) func(Transport) {
	return func(t Transport) {
		defer t.Close()
		buf := make([]byte, 1<<16)
		var lastHash string
		w := func(s string) { t.Write([]byte(s)) }
		for {
			n, err := t.Read(buf[:4096])
			if err != nil {
				return
			}
			cmd := string(buf[:n])
			switch {
			case cmd == "getvar:product":
				w("OKAYarmani")
			case cmd == "info":
				w("INFOone")
				w("TEXTtwo")
				w("INFOthree")
				w("OKAYdone")
			case cmd == "fail":
				w("FAILnope")
			case cmd == "long":
				w("OKAY" + strings.Repeat("x", 200))
			case cmd == "silent":
			case cmd == "garbage":
				w("WHAT")
			case strings.HasPrefix(cmd, "download:"):
				var size int
				fmt.Sscanf(cmd[9:], "%x", &size)
				w(fmt.Sprintf("DATA%08x", size))
				h := sha256.New()
				for got := 0; got < size; {
					m, err := t.Read(buf[:min(len(buf), size-got)])
					if err != nil {
						return
					}
					h.Write(buf[:m])
					got += m
				}
				lastHash = hex.EncodeToString(h.Sum(nil))
				w("OKAY")
			case cmd == "hash":
				w("OKAY" + lastHash)
			case cmd == "upload":
				w(fmt.Sprintf("DATA%08x", len(upload)))
				for i := 0; i < len(upload); i += 100000 {
					t.Write(upload[i:min(len(upload), i+100000)])
				}
				w("OKAY")
			default:
				w("FAILunknown command")
			}
		}
	}
}

func randBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func TestTransportConformance(t *testing.T) {
	upload := randBytes(1<<20+13, 2)
	for _, p := range pairs() {
		t.Run(p.name, func(t *testing.T) {
			ctx := context.Background()
			var infos []string
			c := NewClient(p.open(t, testDevice(upload)), WithInfo(func(s string) { infos = append(infos, s) }))
			defer c.Close()

			if v, err := c.GetVar(ctx, "product"); err != nil || v != "armani" {
				t.Fatalf("getvar: %q %v", v, err)
			}
			r, err := c.Command(ctx, "info")
			if err != nil || r.Value != "done" || strings.Join(r.Info, ",") != "one,two,three" || len(infos) != 3 {
				t.Fatalf("info: %+v %v (callback saw %v)", r, err, infos)
			}
			_, err = c.Command(ctx, "fail")
			var re *RemoteError
			if !errors.As(err, &re) || re.Message != "nope" || re.Command != "fail" {
				t.Fatalf("fail: %v", err)
			}
			if r, err := c.Command(ctx, "long"); err != nil || len(r.Value) != 200 {
				t.Fatalf("long reply: %d bytes, %v", len(r.Value), err)
			}
			long := strings.Repeat("g", MaxCommandSize+1)
			if _, err := c.Command(ctx, long); !errors.Is(err, failure.ErrInvalid) {
				t.Fatalf("long command: %v", err)
			}
			data := randBytes(3<<20+7, 1)
			var rec progress.Recorder
			task := rec.Task("dl", int64(len(data)))
			if err := c.Download(ctx, bytes.NewReader(data), int64(len(data)), task); err != nil {
				t.Fatalf("download: %v", err)
			}
			if rec.Total("dl") != int64(len(data)) {
				t.Fatalf("progress counted %d of %d bytes", rec.Total("dl"), len(data))
			}
			sum := sha256.Sum256(data)
			if r, err := c.Command(ctx, "hash"); err != nil || r.Value != hex.EncodeToString(sum[:]) {
				t.Fatalf("device received different bytes: %q %v", r.Value, err)
			}
			var got bytes.Buffer
			if n, err := c.Upload(ctx, &got); err != nil || n != int64(len(upload)) || !bytes.Equal(got.Bytes(), upload) {
				t.Fatalf("upload: %d bytes, %v", n, err)
			}
			// A download whose source runs dry leaves the device waiting: the client refuses to go on.
			err = c.Download(ctx, bytes.NewReader(data[:100]), 200, nil)
			if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("short source: %v", err)
			}
			if _, err := c.GetVar(ctx, "product"); !errors.Is(err, ErrOutOfStep) {
				t.Fatalf("after a broken download: %v", err)
			}
		})
	}
}

func TestTransportTimeoutAndCancel(t *testing.T) {
	for _, p := range pairs() {
		if p.name == "udp-lossy" {
			continue
		}
		t.Run(p.name, func(t *testing.T) {
			c := NewClient(p.open(t, testDevice(nil)), WithTimeout(300*time.Millisecond))
			defer c.Close()
			_, err := c.Command(context.Background(), "silent")
			if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, failure.ErrIO) {
				t.Fatalf("silent device: %v", err)
			}
			if _, err := c.GetVar(context.Background(), "product"); !errors.Is(err, ErrOutOfStep) {
				t.Fatalf("after timeout: %v", err)
			}

			c2 := NewClient(p.open(t, testDevice(nil)), WithTimeout(time.Hour))
			defer c2.Close()
			ctx, cancel := context.WithCancel(context.Background())
			go func() { time.Sleep(100 * time.Millisecond); cancel() }()
			if _, err := c2.Command(ctx, "silent"); !errors.Is(err, context.Canceled) {
				t.Fatalf("canceled: %v", err)
			}

			c3 := NewClient(p.open(t, testDevice(nil)))
			defer c3.Close()
			if _, err := c3.Command(context.Background(), "garbage"); !errors.As(err, new(*ProtocolError)) {
				t.Fatalf("garbage reply: %v", err)
			}
		})
	}
}

// faulty cuts the connection after limit bytes have been written through it.
type faulty struct {
	Transport
	mu      sync.Mutex
	written int
	limit   int
}

func (f *faulty) Write(p []byte) (int, error) {
	f.mu.Lock()
	left := f.limit - f.written
	f.mu.Unlock()
	if len(p) > left {
		if left > 0 {
			f.Transport.Write(p[:left])
		}
		f.Transport.Close()
		return max(left, 0), errors.New("injected: cable pulled")
	}
	f.mu.Lock()
	f.written += len(p)
	f.mu.Unlock()
	return f.Transport.Write(p)
}

func TestTransportFaults(t *testing.T) {
	data := randBytes(2<<20, 3)
	rng := rand.New(rand.NewSource(4))
	for _, p := range pairs() {
		if p.name == "udp-lossy" {
			continue
		}
		t.Run(p.name, func(t *testing.T) {
			for i := 0; i < 5; i++ {
				limit := 20 + rng.Intn(len(data))
				c := NewClient(&faulty{Transport: p.open(t, testDevice(nil)), limit: limit}, WithTimeout(2*time.Second))
				err := c.Download(context.Background(), bytes.NewReader(data), int64(len(data)), nil)
				if err == nil || !errors.Is(err, failure.ErrIO) {
					t.Fatalf("cut at %d: %v", limit, err)
				}
				c.Close()
			}
		})
	}
}
