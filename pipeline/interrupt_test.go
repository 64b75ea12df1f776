package pipeline

import (
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// An interrupted build leaves no bundle and no temporary folder, whenever the interruption comes, and the
// same command then succeeds (issue 19: a build used to finish anyway and refuse its own rerun).
func TestBuildInterrupted(t *testing.T) {
	rom := armaniROM(t, "armani")
	dir := t.TempDir()
	out := filepath.Join(dir, "bundle")
	opt := Options{Device: device(t, "armani"), Input: rom, Sets: hardened(t), Out: out}

	// A full run first, to know how long a build takes on this machine.
	t0 := time.Now()
	if _, err := Run(context.Background(), Options{Device: opt.Device, Input: rom, Sets: opt.Sets, Out: filepath.Join(t.TempDir(), "ref")}); err != nil {
		t.Fatal(err)
	}
	full := time.Since(t0)

	rng := rand.New(rand.NewSource(1919))
	runs := 6
	if testing.Short() {
		runs = 2
	}
	for i := range runs {
		ctx, cancel := context.WithCancel(context.Background())
		at := time.Duration(rng.Int63n(int64(full)))
		if i == 0 {
			at = 0 // canceled before it starts
		}
		canceledAt := make(chan time.Time, 1)
		timer := time.AfterFunc(at, func() { canceledAt <- time.Now(); cancel() })
		_, err := Run(ctx, opt)
		returned := time.Now()
		timer.Stop()
		cancel()
		if err == nil {
			// Finished before the cancel: a complete bundle, which the next round must not meet.
			if _, serr := os.Stat(filepath.Join(out, "manifest.json")); serr != nil {
				t.Fatalf("run %d: success without manifest: %v", i, serr)
			}
			os.RemoveAll(out)
			continue
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("run %d (cancel after %v): %v, want context.Canceled", i, at, err)
		}
		if d := returned.Sub(<-canceledAt); d > time.Second {
			t.Fatalf("run %d: returned %v after the cancel", i, d)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("run %d (cancel after %v): left %v", i, at, ents)
		}
	}
	if _, err := Run(context.Background(), opt); err != nil {
		t.Fatalf("rerun after interruptions: %v", err)
	}
}
