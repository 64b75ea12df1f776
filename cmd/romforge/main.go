// Command romforge turns a community ROM release into a hardened, flashable image set and flashes it.
// This package is the CLI only: each command parses flags, calls one library package and prints.
package main

import (
	"context"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/cmd/romforge/internal/earlysignal"
	"github.com/romforge/romforge/internal/safeio"
)

// interruptGrace is how long a command gets to stop by itself after the first Ctrl-C/SIGTERM (it cleans up
// on its own way out); past it, or on a second signal, the tracked temporary files are removed and the
// process exits at once. The README promises an interrupted command ends within a second.
const interruptGrace = 800 * time.Millisecond

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go watchSignals(earlysignal.C, cancel, finished, interruptGrace, func() { emergencyExit(wantsJSON(os.Args)) })
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	// Signals stay caught until the exit: restoring the default action here would let a late Ctrl-C
	// kill a process that already finished its work.
	close(finished)
	os.Exit(code)
}

// watchSignals turns the first signal into cancellation of the root context and the second one (or a
// command that does not stop within grace) into a call of abort (which exits the process).
func watchSignals(sigs <-chan os.Signal, cancel context.CancelFunc, finished <-chan struct{}, grace time.Duration, abort func()) {
	select {
	case <-sigs:
	case <-finished:
		return
	}
	cancel()
	select {
	case <-sigs:
	case <-time.After(grace):
	case <-finished:
		return
	}
	abort()
}

// emergencyExit removes every tracked temporary file, reports the interruption and exits 130 at once.
func emergencyExit(asJSON bool) {
	safeio.RemoveTemps()
	app := newApp(os.Stdin, os.Stdout, os.Stderr)
	var cmd *cli.Command
	var path string
	if norm, err := normalizeArgs(app, os.Args); err == nil {
		cmd, path = commandOf(app, norm)
	}
	reportError(os.Stdout, os.Stderr, asJSON, cmd, path, context.Canceled)
	os.Exit(exitInterrupted)
}
