package avb

import "bytes"

// IsVBMeta reports whether head starts a vbmeta image (AVB0).
func IsVBMeta(head []byte) bool { return bytes.HasPrefix(head, []byte(vbmetaMagic)) }
