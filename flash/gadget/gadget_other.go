//go:build !linux

package gadget

import "github.com/romforge/romforge/flash/fastboot"

// Listener is not available on this system.
type Listener struct{ fastboot.Listener }

// Listen is not available on this system.
func Listen(opt Options) (*Listener, error) { return nil, ErrUnsupported }
