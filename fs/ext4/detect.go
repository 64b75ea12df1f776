package ext4

import "encoding/binary"

// IsExt4 reports whether head (an image's first bytes, at least 1082) holds an ext2/3/4 superblock magic.
func IsExt4(head []byte) bool {
	return len(head) >= 1082 && binary.LittleEndian.Uint16(head[1080:]) == magic
}
