package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/romforge/romforge/internal/safeio"
)

// watchHarness runs watchSignals with a fake signal channel and records cancel and abort.
type watchHarness struct {
	sigs     chan os.Signal
	finished chan struct{}
	ctx      context.Context
	aborted  chan time.Time
	returned chan struct{}
}

func startWatch(grace time.Duration) *watchHarness {
	h := &watchHarness{sigs: make(chan os.Signal, 2), finished: make(chan struct{}), aborted: make(chan time.Time, 1), returned: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	h.ctx = ctx
	go func() {
		defer close(h.returned)
		watchSignals(h.sigs, cancel, h.finished, grace, func() { h.aborted <- time.Now() })
	}()
	return h
}

func TestWatchSignals(t *testing.T) {
	t.Run("first signal cancels, the command stops by itself", func(t *testing.T) {
		h := startWatch(time.Hour)
		h.sigs <- os.Interrupt
		select {
		case <-h.ctx.Done():
		case <-time.After(time.Second):
			t.Fatal("context not canceled by the first signal")
		}
		close(h.finished)
		<-h.returned
		select {
		case <-h.aborted:
			t.Fatal("aborted although the command finished")
		default:
		}
	})
	t.Run("second signal aborts at once", func(t *testing.T) {
		h := startWatch(time.Hour)
		h.sigs <- os.Interrupt
		<-h.ctx.Done()
		sent := time.Now()
		h.sigs <- os.Interrupt
		select {
		case at := <-h.aborted:
			if d := at.Sub(sent); d > 200*time.Millisecond {
				t.Fatalf("abort %v after the second signal", d)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("second signal did not abort")
		}
	})
	t.Run("a command that ignores the context is aborted after the grace", func(t *testing.T) {
		h := startWatch(100 * time.Millisecond)
		sent := time.Now()
		h.sigs <- os.Interrupt
		select {
		case at := <-h.aborted:
			if d := at.Sub(sent); d < 100*time.Millisecond || d > time.Second {
				t.Fatalf("abort after %v, want the 100 ms grace", d)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("no abort after the grace")
		}
	})
	t.Run("no signal: nothing happens", func(t *testing.T) {
		h := startWatch(time.Millisecond)
		close(h.finished)
		<-h.returned
		if h.ctx.Err() != nil {
			t.Fatal("canceled without a signal")
		}
	})
}

// The emergency path removes what the goroutines still writing had open (they never get to clean up).
func TestRemoveTempsOnAbort(t *testing.T) {
	dir := t.TempDir()
	f, err := safeio.Create(filepath.Join(dir, "system.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	d, err := safeio.CreateDir(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Abort()
	f.Write(make([]byte, 1<<20))
	h := startWatch(time.Hour)
	h.sigs <- os.Interrupt
	h.sigs <- os.Interrupt
	<-h.aborted
	safeio.RemoveTemps() // what emergencyExit does before exiting
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
}
