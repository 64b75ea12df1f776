package flash

import "sync"

// claims remember which target is flashing which phone, so one phone reached under two names
// (tcp:localhost and tcp:127.0.0.1, a USB serial and its usb:PORT) is not written by two connections at
// once. A phone is known by its serialno; where the connection also knows the USB port the phone is
// plugged in, two phones that merely share a serialno (factory images with a fixed one) on different
// ports are different phones, and each is flashed.
type claims struct {
	mu sync.Mutex
	by map[string][]claim // serialno → who holds it
}

type claim struct{ target, loc string }

// take claims the phone with serialno for target, reached at loc ("" when the transport cannot say).
// It returns the other target when that one already holds the same phone.
func (c *claims) take(serialno, target, loc string) (other string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string][]claim{}
	}
	for _, h := range c.by[serialno] {
		if h.target == target {
			return "", true
		}
		// Only two known, different ports prove two phones; anything less is one phone listed twice.
		if h.loc == "" || loc == "" || h.loc == loc {
			return h.target, false
		}
	}
	c.by[serialno] = append(c.by[serialno], claim{target, loc})
	return "", true
}

// release drops the claims of targets for which keep says false (a station lets go of a phone once
// the name it was claimed under has gone: it may come back under any name).
func (c *claims) release(keep func(target string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for sn, hs := range c.by {
		kept := hs[:0]
		for _, h := range hs {
			if keep(h.target) {
				kept = append(kept, h)
			}
		}
		if len(kept) == 0 {
			delete(c.by, sn)
		} else {
			c.by[sn] = kept
		}
	}
}
