//go:build unix

package safeio

import (
	"errors"
	"syscall"
)

// pidAlive reports whether a process with that pid exists (signal 0 probes without signalling). EPERM
// means it exists under another user.
func pidAlive(pid int) (alive, known bool) {
	err := syscall.Kill(pid, 0)
	switch {
	case err == nil, errors.Is(err, syscall.EPERM):
		return true, true
	case errors.Is(err, syscall.ESRCH):
		return false, true
	}
	return false, false
}
