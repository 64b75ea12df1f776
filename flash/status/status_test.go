package status

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/romforge/romforge/flash"
	"github.com/romforge/romforge/internal/failure"
)

func TestCheckAddr(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:8080", "[::1]:9000", "localhost:0", "127.0.0.2:1"} {
		if err := CheckAddr(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"0.0.0.0:8080", ":8080", "192.168.1.5:80", "example.com:80", "8080"} {
		if err := CheckAddr(bad); !errors.Is(err, failure.ErrUsage) {
			t.Errorf("%s: %v, want a usage error", bad, err)
		}
	}
}

// TestEventStream reads the server-sent events as a browser would: a snapshot at once, then a new one
// after each change, rows in first-seen order.
func TestEventStream(t *testing.T) {
	b := NewBoard("bench 1")
	b.Every = time.Millisecond
	srv := httptest.NewServer(b.Handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	next := func() Snapshot {
		t.Helper()
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var s Snapshot
				if err := json.Unmarshal([]byte(d), &s); err != nil {
					t.Fatal(err)
				}
				return s
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return Snapshot{}
	}
	if s := next(); s.Title != "bench 1" || len(s.Rows) != 0 {
		t.Fatalf("first snapshot %+v", s)
	}
	b.Update(flash.Status{Serial: "tcp:b:1", State: flash.StateFlashing})
	b.Update(flash.Status{Serial: "tcp:a:1", State: flash.StateChecking})
	var s Snapshot
	for s = next(); len(s.Rows) < 2; s = next() {
	}
	if s.Rows[0].Serial != "tcp:b:1" || s.Rows[1].Serial != "tcp:a:1" {
		t.Fatalf("order %+v", s.Rows)
	}
	b.Update(flash.Status{Serial: "tcp:b:1", State: flash.ResultOK})
	b.SetTally(flash.Tally{OK: 1})
	for s = next(); s.Tally.OK != 1 || s.Rows[0].State != flash.ResultOK; s = next() {
	}
	if len(s.Rows) != 2 {
		t.Fatalf("rows %+v", s.Rows)
	}

	page, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page.Body.Close()
	if page.StatusCode != 200 || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %s %s", page.Status, page.Header.Get("Content-Type"))
	}
}

// The page is self-contained: nothing it loads comes from another origin.
func TestPageHasNoExternalAssets(t *testing.T) {
	p := string(page)
	for _, bad := range []string{"http://", "https://", "//cdn", "<link", "src="} {
		if strings.Contains(p, bad) {
			t.Errorf("index.html contains %q", bad)
		}
	}
}

func TestServeStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addr, done, err := Serve(ctx, "127.0.0.1:0", NewBoard("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/rows")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop")
	}
	if _, _, err := Serve(context.Background(), "0.0.0.0:0", NewBoard("x")); !errors.Is(err, failure.ErrUsage) {
		t.Fatalf("non-loopback: %v", err)
	}
}
