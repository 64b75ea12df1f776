package flash

import (
	"context"
	"io"

	"github.com/romforge/romforge/progress"
)

// Locator is a connection that knows where its phone is plugged in (usb:1-2.3). Phones sharing a
// serialno are told apart by it; connections that cannot say (network) do not implement it or say "".
type Locator interface{ Location() string }

// Device is what flashing needs from a fastboot connection. *fastboot.Client implements it; tests use
// mocks and the emulator.
type Device interface {
	GetVar(ctx context.Context, name string) (string, error)
	Download(ctx context.Context, r io.Reader, size int64, task progress.Task) error
	Flash(ctx context.Context, partition string) error
	Erase(ctx context.Context, partition string) error
	SetActive(ctx context.Context, slot string) error
	Reboot(ctx context.Context, target string) error
	ResizeLogicalPartition(ctx context.Context, name string, size int64) error
	SnapshotUpdate(ctx context.Context, action string) error
}
