package fastboot_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash/emulator"
	"github.com/romforge/romforge/flash/fastboot"
	"github.com/romforge/romforge/internal/validators"
	"github.com/romforge/romforge/progress"
)

// The exec transport drives the AOSP client against the emulator over TCP: the same Client calls as
// over USB, with the bytes moved by the fastboot binary.
func TestExecTransportAgainstEmulator(t *testing.T) {
	bin := validators.Tool(t, "fastboot")
	cat, err := devices.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	dev, err := cat.Lookup("armani")
	if err != nil {
		t.Fatal(err)
	}
	d, err := emulator.New(dev, emulator.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := fastboot.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.ServeListener(ctx, l); close(done) }()
	defer func() { cancel(); <-done }()

	tr, err := fastboot.DialExec(ctx, bin, "tcp:"+l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := fastboot.NewClient(tr)
	defer c.Close()
	if v, err := c.GetVar(ctx, "product"); err != nil || v != "armani" {
		t.Fatalf("getvar product = %q, %v", v, err)
	}
	var re *fastboot.RemoteError
	if _, err := c.GetVar(ctx, "no-such-variable"); !errors.As(err, &re) {
		t.Fatalf("unknown variable: %v", err)
	}

	rng := rand.New(rand.NewPCG(7, 8))
	for _, size := range []int{1 + rng.IntN(4096), 100000 + rng.IntN(300000)} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if err := c.Download(ctx, bytes.NewReader(data), int64(size), progress.Discard.Task("boot", int64(size))); err != nil {
			t.Fatal(err)
		}
		if err := c.Flash(ctx, "boot"); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(d.PartitionPath("boot"))
		if err != nil || len(got) < size || !bytes.Equal(got[:size], data) {
			t.Fatalf("boot partition after flashing %d bytes: %v", size, err)
		}
	}
	// A failing flash is the device's FAIL, not a transport error.
	data := make([]byte, 4096)
	if err := c.Download(ctx, bytes.NewReader(data), 4096, progress.Discard.Task("x", 4096)); err != nil {
		t.Fatal(err)
	}
	if err := c.Flash(ctx, "no-such-partition"); !errors.As(err, &re) {
		t.Fatalf("flash of an unknown partition: %v", err)
	}
	if r, err := c.Command(ctx, "frobnicate:now"); err == nil || r.Status == fastboot.StatusOkay {
		t.Fatalf("a command the binary cannot send: %+v %v", r, err)
	}

	// Cancellation kills the running binary at once (the phone answers after 20 s).
	d.SetFault(emulator.Fault{Latency: 20 * time.Second})
	c2ctx, c2cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer c2cancel()
	tr2, err := fastboot.DialExec(ctx, bin, "tcp:"+l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c2 := fastboot.NewClient(tr2)
	defer c2.Close()
	start := time.Now()
	if _, err := c2.GetVar(c2ctx, "product"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("canceled getvar: %v", err)
	}
	if dt := time.Since(start); dt > 5*time.Second {
		t.Fatalf("cancellation took %v", dt)
	}
}
