package fetch

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/progress"
)

func TestLockFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "rom.zip.lock")
	sleeps := 0
	sleep := func(context.Context, time.Duration) error { sleeps++; return nil }

	unlock, err := lockFile(ctx, path, time.Minute, sleep)
	if err != nil {
		t.Fatal(err)
	}
	// A second holder is refused once its wait runs out, as an I/O failure that says why.
	_, err = lockFile(ctx, path, 0, sleep)
	if !errors.Is(err, failure.ErrIO) || err == nil {
		t.Fatalf("second lock while held: %v", err)
	}
	unlock()
	unlock2, err := lockFile(ctx, path, 0, sleep)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	unlock2()

	// A lock file left by a process that died (or by the old pid-file lock) holds nothing.
	os.WriteFile(path, []byte("1"), 0o644)
	unlock3, err := lockFile(ctx, path, 0, sleep)
	if err != nil {
		t.Fatalf("leftover lock file: %v", err)
	}
	unlock3()

	// Waiting is cancellable.
	unlock4, _ := lockFile(ctx, path, 0, sleep)
	defer unlock4()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = lockFile(cctx, path, time.Minute, func(c context.Context, _ time.Duration) error { return c.Err() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

// TestDownloadSizeFromHEADAndResumeHint: a bare URL's size comes from HEAD (so progress has a total), and
// a failed transfer says the partial file is kept for a rerun to resume.
func TestDownloadSizeFromHEADAndResumeHint(t *testing.T) {
	body := bytes.Repeat([]byte("romforge"), 8192)
	cut := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cut && r.Method == http.MethodGet {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body[:len(body)/2])
			if hj, ok := w.(http.Hijacker); ok {
				c, _, _ := hj.Hijack()
				c.Close()
			}
			return
		}
		http.ServeContent(w, r, "rom.zip", time.Time{}, bytes.NewReader(body))
	}))
	defer srv.Close()
	rec := &progress.Recorder{}
	b := Build{Source: "url", Asset: "rom.zip", URL: srv.URL + "/rom.zip", Checksum: Checksum{Kind: "none"}}
	if _, err := Download(context.Background(), b, DownloadOptions{Dir: t.TempDir(), AllowUnverified: true, Progress: rec, Sleep: noSleep, HTTP: NewHTTPClient(noSleep)}); err != nil {
		t.Fatal(err)
	}
	if ev := rec.Events(); len(ev) == 0 || ev[0].Kind != "start" || ev[0].Total != int64(len(body)) {
		t.Fatalf("progress start total: %+v, want %d", ev, len(body))
	}
	cut = true
	_, err := Download(context.Background(), b, DownloadOptions{Dir: t.TempDir(), AllowUnverified: true, Retries: 1, Sleep: noSleep, HTTP: NewHTTPClient(noSleep)})
	if err == nil || !strings.Contains(err.Error(), "run the same command again to resume") {
		t.Fatalf("cut download: %v", err)
	}
}
