package fetch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/romforge/romforge/internal/failure"
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
