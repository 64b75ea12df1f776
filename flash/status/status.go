// Package status serves a flash station's live status page: one embedded HTML page (no external
// assets) that follows every phone's row through server-sent events. It is local by design: the page
// has no authentication, so it only listens on loopback addresses.
package status

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/romforge/romforge/flash"
	"github.com/romforge/romforge/internal/failure"
)

//go:embed index.html
var page []byte

// Board holds every phone's latest row and the tally, and tells the pages watching it.
type Board struct {
	mu    sync.Mutex
	rows  map[string]flash.Status
	order []string
	tally flash.Tally
	title string
	subs  map[chan struct{}]struct{}
	// Every is the least time between two pushes to one page (default 100 ms): a page gets the latest
	// rows, not every byte-progress tick.
	Every time.Duration
}

// NewBoard returns an empty board; title heads the page.
func NewBoard(title string) *Board {
	return &Board{rows: map[string]flash.Status{}, subs: map[chan struct{}]struct{}{}, title: title}
}

// Update records a phone's row (usable as flash.BatchOptions.Observe).
func (b *Board) Update(s flash.Status) {
	b.mu.Lock()
	if _, ok := b.rows[s.Serial]; !ok {
		b.order = append(b.order, s.Serial)
	}
	b.rows[s.Serial] = s
	b.notifyLocked()
	b.mu.Unlock()
}

// SetTally records the running tally.
func (b *Board) SetTally(t flash.Tally) {
	b.mu.Lock()
	b.tally = t
	b.notifyLocked()
	b.mu.Unlock()
}

func (b *Board) notifyLocked() {
	for ch := range b.subs {
		select {
		case ch <- struct{}{}:
		default: // a push is pending already; it will carry this change too
		}
	}
}

// Snapshot is what a page receives: every row in first-seen order and the tally.
type Snapshot struct {
	Title string         `json:"title"`
	Rows  []flash.Status `json:"rows"`
	Tally flash.Tally    `json:"tally"`
}

// Snapshot returns the board's current state.
func (b *Board) Snapshot() Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Snapshot{Title: b.title, Tally: b.tally, Rows: make([]flash.Status, 0, len(b.order))}
	for _, k := range b.order {
		s.Rows = append(s.Rows, b.rows[k])
	}
	return s
}

// Handler serves the page at /, the rows as JSON at /rows and the event stream at /events.
func (b *Board) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
		w.Write(page)
	})
	mux.HandleFunc("GET /rows", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(b.Snapshot())
	})
	mux.HandleFunc("GET /events", b.events)
	return mux
}

// events streams a snapshot at once and after every change, until the page goes away.
func (b *Board) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
	}()
	every := b.Every
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	for {
		data, _ := json.Marshal(b.Snapshot())
		if _, err := fmt.Fprintf(w, "event: rows\ndata: %s\n\n", data); err != nil {
			return
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-ch:
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(every):
		}
	}
}

// CheckAddr accepts only loopback listen addresses (the page has no authentication).
func CheckAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return failure.Kinded(failure.ErrUsage, fmt.Errorf("status: --http %q: want 127.0.0.1:PORT (%v)", addr, err))
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return failure.Kinded(failure.ErrUsage, fmt.Errorf("status: --http %q: the status page has no authentication, so it listens on loopback only (127.0.0.1:PORT or [::1]:PORT); reach it from elsewhere through an SSH tunnel", addr))
	}
	return nil
}

// Serve listens on addr (loopback only) and serves the board until ctx ends. It returns the address
// it listens on (the port filled in when addr asked for port 0) once it is listening, and a channel
// that receives the server's end.
func Serve(ctx context.Context, addr string, b *Board) (string, <-chan error, error) {
	if err := CheckAddr(addr); err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, failure.Kinded(failure.ErrIO, fmt.Errorf("status: listening on %s: %w (is the port taken?)", addr, err))
	}
	srv := &http.Server{Handler: b.Handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	done := make(chan error, 1)
	go func() {
		err := srv.Serve(l)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	go func() {
		<-ctx.Done()
		// The event streams end with ctx (their requests' base context); Close then returns at once.
		srv.Close()
	}()
	return l.Addr().String(), done, nil
}
