package rom

import (
	"encoding/binary"
	"testing"
)

// TestClassify: each format's magic at its place gives its kind, and nothing else does.
func TestClassify(t *testing.T) {
	at := func(off int, b []byte) []byte {
		h := make([]byte, 8192)
		copy(h[off:], b)
		return h
	}
	u32 := func(v uint32) []byte { b := make([]byte, 4); binary.LittleEndian.PutUint32(b, v); return b }
	u16 := func(v uint16) []byte { b := make([]byte, 2); binary.LittleEndian.PutUint16(b, v); return b }
	for _, tc := range []struct {
		name string
		head []byte
		want Kind
	}{
		{"payload", at(0, []byte("CrAU")), KindPayloadBin},
		{"sparse", at(0, u32(0xed26ff3a)), KindSparse},
		{"boot", at(0, []byte("ANDROID!")), KindBoot},
		{"vendor_boot", at(0, []byte("VNDRBOOT")), KindVendorBoot},
		{"vbmeta", at(0, []byte("AVB0")), KindVbmeta},
		{"super", at(4096, u32(0x616c4467)), KindSuper},
		{"super_empty", at(0, u32(0x616c4467)), KindSuper},
		{"erofs", at(1024, u32(0xe0f5e1e2)), KindErofs},
		{"ext4", at(1080, u16(0xef53)), KindExt4},
		{"zeros", make([]byte, 8192), KindUnknown},
		{"short", []byte("AN"), KindUnknown},
		{"empty", nil, KindUnknown},
		{"ext4 magic cut off", make([]byte, 1081), KindUnknown},
	} {
		if got := Classify(tc.head); got != tc.want {
			t.Errorf("%s: Classify = %s, want %s", tc.name, got, tc.want)
		}
	}
}
