//go:build !unix

package main

import "time"

// cpuTime is not measured on this platform; the decode report then shows wall time only.
func cpuTime() time.Duration { return 0 }
