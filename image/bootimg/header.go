package bootimg

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/romforge/romforge/internal/safeio"
)

// Magic strings at offset 0.
const (
	BootMagic       = "ANDROID!"
	VendorBootMagic = "VNDRBOOT"
)

// Field sizes and fixed header lengths from bootimg.h.
const (
	nameSize         = 16
	argsSize         = 512
	extraArgsSize    = 1024
	v3ArgsSize       = argsSize + extraArgsSize // 1536
	vendorArgsSize   = 2048
	ramdiskNameSize  = 32
	boardIDWords     = 16
	tableEntrySizeV4 = 108

	bootV0Len   = 1632
	bootV1Len   = 1648
	bootV2Len   = 1660
	bootV3Len   = 1580
	bootV4Len   = 1584
	vendorV3Len = 2112
	vendorV4Len = 2128

	// V3PageSize is the fixed page size of boot header v3 and v4 images.
	V3PageSize = 4096
	// SignatureSizeV4 is the size mkbootimg gives a boot v4 signature section.
	SignatureSizeV4 = 4096
)

// Page sizes accepted when reading: mkbootimg offers 2 KiB to 16 KiB; real devices stay within this
// range too, so anything outside it is treated as corrupt rather than trusted for layout arithmetic.
const (
	minPageSize = 2048
	maxPageSize = 1 << 17
)

// Kind says whether an image is a boot (or recovery) image or a vendor_boot image.
type Kind int

const (
	KindBoot Kind = iota
	KindVendorBoot
)

func (k Kind) String() string {
	if k == KindVendorBoot {
		return "vendor_boot"
	}
	return "boot"
}

// Vendor ramdisk types of the vendor_boot v4 table.
const (
	RamdiskTypeNone     = 0
	RamdiskTypePlatform = 1
	RamdiskTypeRecovery = 2
	RamdiskTypeDLKM     = 3
)

// VendorRamdisk is one entry of the vendor_boot v4 vendor ramdisk table.
type VendorRamdisk struct {
	Size    uint32               `json:"ramdisk_size"`
	Offset  uint32               `json:"ramdisk_offset"` // from the start of the vendor ramdisk section
	Type    uint32               `json:"ramdisk_type"`
	Name    string               `json:"ramdisk_name"`
	BoardID [boardIDWords]uint32 `json:"board_id"`

	rawName []byte // the 32 name bytes as read, for byte-exact rewriting
	extra   []byte // bytes of an entry larger than 108 bytes, kept as read
}

// Header holds every field of a boot or vendor_boot header. Which fields exist depends on Kind and
// HeaderVersion (see bootimg.h); the others stay zero. Section sizes and offsets are filled in by Parse
// and recomputed from the parts when an image is built.
type Header struct {
	Kind          Kind
	HeaderVersion uint32

	KernelSize  uint32 // boot
	KernelAddr  uint32 // boot v0–v2, vendor_boot
	RamdiskSize uint32 // boot; vendor_boot: vendor_ramdisk_size (total of all vendor ramdisks)
	RamdiskAddr uint32 // boot v0–v2, vendor_boot
	SecondSize  uint32 // boot v0–v2
	SecondAddr  uint32
	TagsAddr    uint32 // boot v0–v2, vendor_boot
	PageSize    uint32 // boot v0–v2, vendor_boot; 4096 implied for boot v3/v4

	// DTSize is the size of a QCOM device-tree image (CAF v0): such images store it in the
	// header_version word, so HeaderVersion is 0 when DTSize is set.
	DTSize uint32

	OSVersion    string // "A.B.C", "" when zero
	OSPatchLevel string // "YYYY-MM", "" when zero

	Name         string   // boot v0–v2 and vendor_boot: product (board) name
	Cmdline      string   // boot v0–v2: first 512 bytes; v3/v4: 1536; vendor_boot: 2048
	ID           [32]byte // boot v0–v2: SHA-1 digest of the sections (20 bytes) and 12 zero bytes
	ExtraCmdline string   // boot v0–v2

	RecoveryDTBOSize   uint32 // boot v1, v2
	RecoveryDTBOOffset uint64
	HeaderSize         uint32 // boot v1+, vendor_boot
	DTBSize            uint32 // boot v2, vendor_boot
	DTBAddr            uint64

	Reserved      [4]uint32 // boot v3/v4
	SignatureSize uint32    // boot v4

	VendorRamdiskTableSize      uint32 // vendor_boot v4
	VendorRamdiskTableEntryNum  uint32
	VendorRamdiskTableEntrySize uint32
	BootconfigSize              uint32
	VendorRamdisks              []VendorRamdisk

	raw map[string][]byte // string fields as read (key: JSON name), so odd bytes survive a rewrite
}

// Magic returns the magic string of the header's kind.
func (h *Header) Magic() string {
	if h.Kind == KindVendorBoot {
		return VendorBootMagic
	}
	return BootMagic
}

// headerLen is the length of the header structure for the kind and version.
func (h *Header) headerLen() int {
	if h.Kind == KindVendorBoot {
		if h.HeaderVersion >= 4 {
			return vendorV4Len
		}
		return vendorV3Len
	}
	switch h.HeaderVersion {
	case 0:
		return bootV0Len
	case 1:
		return bootV1Len
	case 2:
		return bootV2Len
	case 3:
		return bootV3Len
	default:
		return bootV4Len
	}
}

// pageSize is the page size sections are aligned to.
func (h *Header) pageSize() int64 {
	if h.Kind == KindBoot && h.HeaderVersion >= 3 {
		return V3PageSize
	}
	return int64(h.PageSize)
}

// FullCmdline is the kernel command line a boot image carries: cmdline followed by extra_cmdline for
// header v0–v2 (mkbootimg splits one string across the two fields).
func (h *Header) FullCmdline() string { return h.Cmdline + h.ExtraCmdline }

func le32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
func le64(b []byte, off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }

// canonicalField reports whether raw is exactly what encoding its C string would produce, i.e. valid
// UTF-8 followed only by zero bytes. Other fields keep their raw bytes in header.json.
func canonicalField(raw []byte) bool {
	s := safeio.CString(raw)
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range raw[len(s):] {
		if c != 0 {
			return false
		}
	}
	return true
}

// fieldBytes encodes s into an n-byte field, reusing the original bytes when s is what they decode to.
func fieldBytes(key, s string, raw []byte, n int) ([]byte, error) {
	if len(raw) == n && safeio.CString(raw) == s {
		return raw, nil
	}
	if strings.IndexByte(s, 0) >= 0 {
		return nil, fmt.Errorf("bootimg: %s contains a NUL byte", key)
	}
	if len(s) > n {
		return nil, fmt.Errorf("bootimg: %s is %d bytes, the header holds at most %d", key, len(s), n)
	}
	b := make([]byte, n)
	copy(b, s)
	return b, nil
}

func (h *Header) setRaw(key string, b []byte) {
	if h.raw == nil {
		h.raw = map[string][]byte{}
	}
	h.raw[key] = append([]byte(nil), b...)
}

func (h *Header) str(key string, b []byte) string {
	h.setRaw(key, b)
	return safeio.CString(b)
}

// decodeHeader reads a header from buf (at least headerLen bytes for the version, which the caller
// has established from the magic and the version word).
func decodeHeader(buf []byte, kind Kind) (*Header, error) {
	h := &Header{Kind: kind}
	if kind == KindVendorBoot {
		h.HeaderVersion = le32(buf, 8)
		if h.HeaderVersion != 3 && h.HeaderVersion != 4 {
			return nil, formatErr(8, "vendor_boot header version %d is not supported (3 and 4 are)", h.HeaderVersion)
		}
		if len(buf) < h.headerLen() {
			return nil, formatErr(int64(len(buf)), "vendor_boot v%d header truncated", h.HeaderVersion)
		}
		h.PageSize = le32(buf, 12)
		h.KernelAddr = le32(buf, 16)
		h.RamdiskAddr = le32(buf, 20)
		h.RamdiskSize = le32(buf, 24)
		h.Cmdline = h.str("cmdline", buf[28:28+vendorArgsSize])
		h.TagsAddr = le32(buf, 2076)
		h.Name = h.str("name", buf[2080:2096])
		h.HeaderSize = le32(buf, 2096)
		h.DTBSize = le32(buf, 2100)
		h.DTBAddr = le64(buf, 2104)
		if h.HeaderVersion >= 4 {
			h.VendorRamdiskTableSize = le32(buf, 2112)
			h.VendorRamdiskTableEntryNum = le32(buf, 2116)
			h.VendorRamdiskTableEntrySize = le32(buf, 2120)
			h.BootconfigSize = le32(buf, 2124)
		}
		return h, nil
	}
	word := le32(buf, 40)
	switch {
	case word >= 3 && word <= 4:
		h.HeaderVersion = word
		if len(buf) < h.headerLen() {
			return nil, formatErr(int64(len(buf)), "boot v%d header truncated", word)
		}
		h.KernelSize = le32(buf, 8)
		h.RamdiskSize = le32(buf, 12)
		h.OSVersion, h.OSPatchLevel = splitOSVersion(le32(buf, 16))
		h.HeaderSize = le32(buf, 20)
		for i := range h.Reserved {
			h.Reserved[i] = le32(buf, 24+4*i)
		}
		h.Cmdline = h.str("cmdline", buf[44:44+v3ArgsSize])
		if word == 4 {
			h.SignatureSize = le32(buf, 1580)
		}
		return h, nil
	case word > 4:
		// CAF/QCOM mkbootimg writes the size of its --dt image here (header v0 layout).
		h.DTSize = word
	default:
		h.HeaderVersion = word
	}
	if len(buf) < h.headerLen() {
		return nil, formatErr(int64(len(buf)), "boot v%d header truncated", h.HeaderVersion)
	}
	h.KernelSize = le32(buf, 8)
	h.KernelAddr = le32(buf, 12)
	h.RamdiskSize = le32(buf, 16)
	h.RamdiskAddr = le32(buf, 20)
	h.SecondSize = le32(buf, 24)
	h.SecondAddr = le32(buf, 28)
	h.TagsAddr = le32(buf, 32)
	h.PageSize = le32(buf, 36)
	h.OSVersion, h.OSPatchLevel = splitOSVersion(le32(buf, 44))
	h.Name = h.str("name", buf[48:64])
	h.Cmdline = h.str("cmdline", buf[64:576])
	copy(h.ID[:], buf[576:608])
	h.ExtraCmdline = h.str("extra_cmdline", buf[608:1632])
	if h.HeaderVersion >= 1 {
		h.RecoveryDTBOSize = le32(buf, 1632)
		h.RecoveryDTBOOffset = le64(buf, 1636)
		h.HeaderSize = le32(buf, 1644)
	}
	if h.HeaderVersion >= 2 {
		h.DTBSize = le32(buf, 1648)
		h.DTBAddr = le64(buf, 1652)
	}
	return h, nil
}

// encode returns the header structure (headerLen bytes, without page padding).
func (h *Header) encode() ([]byte, error) {
	n := h.headerLen()
	b := make([]byte, n)
	put32 := func(off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
	put64 := func(off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }
	putStr := func(key string, off, size int, s string) error {
		f, err := fieldBytes(key, s, h.raw[key], size)
		if err != nil {
			return err
		}
		copy(b[off:off+size], f)
		return nil
	}
	copy(b, h.Magic())
	if h.Kind == KindVendorBoot {
		put32(8, h.HeaderVersion)
		put32(12, h.PageSize)
		put32(16, h.KernelAddr)
		put32(20, h.RamdiskAddr)
		put32(24, h.RamdiskSize)
		if err := putStr("cmdline", 28, vendorArgsSize, h.Cmdline); err != nil {
			return nil, err
		}
		put32(2076, h.TagsAddr)
		if err := putStr("name", 2080, nameSize, h.Name); err != nil {
			return nil, err
		}
		put32(2096, h.HeaderSize)
		put32(2100, h.DTBSize)
		put64(2104, h.DTBAddr)
		if h.HeaderVersion >= 4 {
			put32(2112, h.VendorRamdiskTableSize)
			put32(2116, h.VendorRamdiskTableEntryNum)
			put32(2120, h.VendorRamdiskTableEntrySize)
			put32(2124, h.BootconfigSize)
		}
		return b, nil
	}
	osw, err := joinOSVersion(h.OSVersion, h.OSPatchLevel)
	if err != nil {
		return nil, err
	}
	if h.HeaderVersion >= 3 {
		put32(8, h.KernelSize)
		put32(12, h.RamdiskSize)
		put32(16, osw)
		put32(20, h.HeaderSize)
		for i, r := range h.Reserved {
			put32(24+4*i, r)
		}
		put32(40, h.HeaderVersion)
		if err := putStr("cmdline", 44, v3ArgsSize, h.Cmdline); err != nil {
			return nil, err
		}
		if h.HeaderVersion >= 4 {
			put32(1580, h.SignatureSize)
		}
		return b, nil
	}
	put32(8, h.KernelSize)
	put32(12, h.KernelAddr)
	put32(16, h.RamdiskSize)
	put32(20, h.RamdiskAddr)
	put32(24, h.SecondSize)
	put32(28, h.SecondAddr)
	put32(32, h.TagsAddr)
	put32(36, h.PageSize)
	if h.DTSize != 0 {
		if h.HeaderVersion != 0 {
			return nil, fmt.Errorf("bootimg: a QCOM dt image needs header version 0 (it is stored in the header_version word)")
		}
		put32(40, h.DTSize)
	} else {
		put32(40, h.HeaderVersion)
	}
	put32(44, osw)
	if err := putStr("name", 48, nameSize, h.Name); err != nil {
		return nil, err
	}
	if err := putStr("cmdline", 64, argsSize, h.Cmdline); err != nil {
		return nil, err
	}
	copy(b[576:608], h.ID[:])
	if err := putStr("extra_cmdline", 608, extraArgsSize, h.ExtraCmdline); err != nil {
		return nil, err
	}
	if h.HeaderVersion >= 1 {
		put32(1632, h.RecoveryDTBOSize)
		put64(1636, h.RecoveryDTBOOffset)
		put32(1644, h.HeaderSize)
	}
	if h.HeaderVersion >= 2 {
		put32(1648, h.DTBSize)
		put64(1652, h.DTBAddr)
	}
	return b, nil
}

// splitOSVersion unpacks the os_version word: 7 bits each of A.B.C above 11 bits of patch level
// (7 bits of year-2000, 4 bits of month). Both forms are lossless, so a rewrite keeps the word.
func splitOSVersion(w uint32) (version, patch string) {
	v, p := w>>11, w&0x7ff
	if v != 0 {
		version = fmt.Sprintf("%d.%d.%d", v>>14, v>>7&0x7f, v&0x7f)
	}
	if p != 0 {
		patch = fmt.Sprintf("%04d-%02d", 2000+p>>4, p&0xf)
	}
	return
}

// joinOSVersion packs "A.B.C" (or "A", "A.B") and "YYYY-MM" (a trailing "-DD" is ignored, as mkbootimg
// does) into the os_version word.
func joinOSVersion(version, patch string) (uint32, error) {
	var v, p uint32
	if version != "" {
		parts := strings.Split(version, ".")
		if len(parts) > 3 {
			return 0, fmt.Errorf("bootimg: os_version %q: want A.B.C", version)
		}
		for i := 0; i < 3; i++ {
			var n uint64
			if i < len(parts) {
				var err error
				if n, err = strconv.ParseUint(parts[i], 10, 32); err != nil || n > 127 {
					return 0, fmt.Errorf("bootimg: os_version %q: want A.B.C with each number 0–127", version)
				}
			}
			v = v<<7 | uint32(n)
		}
	}
	if patch != "" {
		parts := strings.Split(patch, "-")
		if len(parts) < 2 || len(parts) > 3 || len(parts[0]) != 4 || len(parts[1]) != 2 {
			return 0, fmt.Errorf("bootimg: os_patch_level %q: want YYYY-MM", patch)
		}
		y, err1 := strconv.ParseUint(parts[0], 10, 32)
		m, err2 := strconv.ParseUint(parts[1], 10, 32)
		if err1 != nil || err2 != nil || y < 2000 || y > 2127 || m > 15 {
			return 0, fmt.Errorf("bootimg: os_patch_level %q: want YYYY-MM with 2000 ≤ YYYY ≤ 2127", patch)
		}
		p = uint32(y-2000)<<4 | uint32(m)
	}
	return v<<11 | p, nil
}
