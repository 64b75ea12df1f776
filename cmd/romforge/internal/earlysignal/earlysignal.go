// Package earlysignal starts catching Ctrl-C and SIGTERM at the very start of the process. Package
// initialisation runs in import-path order once a package's imports are ready, and this package needs only
// os/signal, so it is set up tens of milliseconds before main runs (heavier packages initialise in
// between); a signal in that window is kept for main instead of killing the process with the default
// action before the cleanup handler exists.
package earlysignal

import (
	"os"
	"os/signal"
	"syscall"
)

// C receives SIGINT and SIGTERM from process start on; main reads it.
var C = make(chan os.Signal, 2)

func init() { signal.Notify(C, os.Interrupt, syscall.SIGTERM) }
