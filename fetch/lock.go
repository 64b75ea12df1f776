package fetch

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/romforge/romforge/internal/failure"
)

// lockFile takes an exclusive lock file next to a download so two processes never write the same .part.
// A lock whose owner process is gone is taken over.
func lockFile(ctx context.Context, path string, wait time.Duration, sleep func(context.Context, time.Duration) error) (func(), error) {
	deadline := time.Now().Add(wait)
	for {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			f.WriteString(strconv.Itoa(os.Getpid()))
			f.Close()
			return func() { os.Remove(path) }, nil
		}
		if !os.IsExist(err) {
			return nil, err
		}
		if b, err := os.ReadFile(path); err == nil {
			if pid, err := strconv.Atoi(string(b)); err == nil && !pidAlive(pid) {
				os.Remove(path) // its owner is gone
				continue
			}
		}
		if time.Now().After(deadline) {
			return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("release: another romforge is downloading the same file (%s); try again when it is done", path))
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
}
