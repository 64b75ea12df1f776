package payload

import "bytes"

// IsPayload reports whether head starts an update_engine payload (CrAU).
func IsPayload(head []byte) bool { return bytes.HasPrefix(head, []byte(Magic)) }
