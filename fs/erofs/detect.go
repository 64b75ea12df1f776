package erofs

import "encoding/binary"

// IsEROFS reports whether head (an image's first bytes, at least 1028) holds an EROFS superblock magic.
func IsEROFS(head []byte) bool {
	return len(head) >= 1028 && binary.LittleEndian.Uint32(head[1024:]) == superMagic
}
