package fetch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"

	"github.com/romforge/romforge/internal/failure"
)

// lockFile takes an exclusive lock next to a download so two processes never write the same .part. It is
// an OS file lock (flock on Unix, LockFileEx on Windows): the kernel drops it when its owner exits however
// it exits, so there is no stale lock to take over and no pid to be fooled by. The file stays (removing
// it would let a waiter lock an unlinked file while a newcomer locks a new one), in the cache's .locks
// folder, out of the downloads' way.
func lockFile(ctx context.Context, path string, wait time.Duration, sleep func(context.Context, time.Duration) error) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("fetch: %w", err))
	}
	l := flock.New(path)
	deadline := time.Now().Add(wait)
	for {
		ok, err := l.TryLock()
		if err != nil {
			return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("fetch: locking %s: %w", path, err))
		}
		if ok {
			return func() { l.Unlock() }, nil
		}
		if time.Now().After(deadline) {
			return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("fetch: another romforge is downloading the same file (%s); try again when it is done", path))
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
}
