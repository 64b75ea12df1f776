package lp

import "encoding/binary"

// IsSuper reports whether head holds LP geometry: at 4096 in a super image, at 0 in a metadata-only
// super_empty.img. head should be at least 4100 bytes.
func IsSuper(head []byte) bool {
	return len(head) >= 4100 && binary.LittleEndian.Uint32(head[4096:]) == GeometryMagic ||
		len(head) >= 4 && binary.LittleEndian.Uint32(head) == GeometryMagic
}
