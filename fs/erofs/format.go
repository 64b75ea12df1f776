package erofs

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"

	"github.com/romforge/romforge/internal/failure"
)

const (
	superOffset = 1024
	superMagic  = 0xE0F5E1E2
	superSize   = 128

	compatSBChecksum = 0x1
	compatMTime      = 0x2
	compatXattrFilt  = 0x4

	incompatZeroPadding   = 0x01
	incompatComprCfgs     = 0x02 // also BIG_PCLUSTER
	incompatChunkedFile   = 0x04
	incompatDeviceTable   = 0x08 // also COMPR_HEAD2
	incompatZTailPacking  = 0x10
	incompatFragments     = 0x20 // also DEDUPE
	incompatXattrPrefixes = 0x40
	// supportedIncompat lists what this reader understands; fragments and multi-device images are refused.
	supportedIncompat = incompatZeroPadding | incompatComprCfgs | incompatChunkedFile | incompatZTailPacking |
		incompatXattrPrefixes | incompatDeviceTable

	layoutFlatPlain    = 0
	layoutCompressFull = 1
	layoutFlatInline   = 2
	layoutCompressComp = 3
	layoutChunkBased   = 4

	chunkFormatBlkbits = 0x1f
	chunkFormatIndexes = 0x20
	nullAddr           = 0xffffffff

	// z_erofs map header advise bits
	advCompacted2B  = 0x01
	advBigPcluster1 = 0x02
	advBigPcluster2 = 0x04
	advInlinePclust = 0x08
	advInterlaced   = 0x10
	advFragment     = 0x20

	lclusterPlain   = 0
	lclusterHead1   = 1
	lclusterNonhead = 2
	lclusterHead2   = 3
	d0Cblkcnt       = 1 << 11

	algLZ4     = 0
	algLZMA    = 1
	algDeflate = 2
	algZstd    = 3

	ftUnknown = 0
	ftReg     = 1
	ftDir     = 2
	ftChr     = 3
	ftBlk     = 4
	ftFifo    = 5
	ftSock    = 6
	ftSymlink = 7

	direntSize = 12
)

var algNames = map[int]string{algLZ4: "lz4", algLZMA: "lzma", algDeflate: "deflate", algZstd: "zstd"}

func algName(a int) string {
	if n, ok := algNames[a]; ok {
		return n
	}
	return fmt.Sprintf("algorithm %d", a)
}

var compatNames = []struct {
	bit  uint32
	name string
}{{compatSBChecksum, "sb_csum"}, {compatMTime, "mtime"}, {compatXattrFilt, "xattr_filter"}}

var incompatNames = []struct {
	bit  uint32
	name string
}{{incompatZeroPadding, "0padding"}, {incompatComprCfgs, "compr_cfgs/big_pcluster"},
	{incompatChunkedFile, "chunked_file"}, {incompatDeviceTable, "device_table"},
	{incompatZTailPacking, "ztailpacking"}, {incompatFragments, "fragments/dedupe"},
	{incompatXattrPrefixes, "xattr_prefixes"}}

func featureNames(v uint32, table []struct {
	bit  uint32
	name string
}) []string {
	names := []string{}
	for _, f := range table {
		if v&f.bit != 0 {
			names = append(names, f.name)
			v &^= f.bit
		}
	}
	for b := uint32(1); v != 0; b <<= 1 {
		if v&b != 0 {
			names = append(names, fmt.Sprintf("unknown_%#x", b))
			v &^= b
		}
	}
	return names
}

// FormatError reports an invalid, corrupt or unsupported image. It satisfies errors.Is(err, failure.ErrInvalid).
type FormatError struct {
	Off int64 // byte offset in the image, -1 if none
	Msg string
}

func (e *FormatError) Error() string {
	if e.Off >= 0 {
		return fmt.Sprintf("erofs: %s (at offset %#x)", e.Msg, e.Off)
	}
	return "erofs: " + e.Msg
}

func (e *FormatError) Unwrap() error { return failure.ErrInvalid }

func errAt(off int64, format string, args ...any) error {
	return &FormatError{Off: off, Msg: fmt.Sprintf(format, args...)}
}

// superblock is the decoded on-disk superblock.
type superblock struct {
	checksum       uint32
	compat         uint32
	blkszbits      uint8
	extslots       uint8
	rootNid        uint64
	inos           uint64
	buildTime      uint64
	buildTimeNsec  uint32
	blocks         uint32
	metaBlkaddr    uint32
	xattrBlkaddr   uint32
	uuid           [16]byte
	volumeName     [16]byte
	incompat       uint32
	u1             uint16
	extraDevices   uint16
	devtSlotoff    uint16
	dirblkbits     uint8
	xattrPrefixCnt uint8
	xattrPrefixOff uint32
	packedNid      uint64
}

func parseSuper(b []byte) superblock {
	le := binary.LittleEndian
	var s superblock
	s.checksum = le.Uint32(b[4:])
	s.compat = le.Uint32(b[8:])
	s.blkszbits = b[12]
	s.extslots = b[13]
	s.rootNid = uint64(le.Uint16(b[14:]))
	s.inos = le.Uint64(b[16:])
	s.buildTime = le.Uint64(b[24:])
	s.buildTimeNsec = le.Uint32(b[32:])
	s.blocks = le.Uint32(b[36:])
	s.metaBlkaddr = le.Uint32(b[40:])
	s.xattrBlkaddr = le.Uint32(b[44:])
	copy(s.uuid[:], b[48:64])
	copy(s.volumeName[:], b[64:80])
	s.incompat = le.Uint32(b[80:])
	s.u1 = le.Uint16(b[84:])
	s.extraDevices = le.Uint16(b[86:])
	s.devtSlotoff = le.Uint16(b[88:])
	s.dirblkbits = b[90]
	s.xattrPrefixCnt = b[91]
	s.xattrPrefixOff = le.Uint32(b[92:])
	s.packedNid = le.Uint64(b[96:])
	return s
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sbChecksum is the kernel's crc32c(~0, …) over the superblock's block from offset 1024 with the checksum
// field zeroed, without the final inversion.
func sbChecksum(blockFromSuper []byte) uint32 {
	b := append([]byte(nil), blockFromSuper...)
	clear(b[4:8])
	return ^crc32.Checksum(b, castagnoli)
}

// xattr name index prefixes.
var xattrPrefixes = map[uint8]string{
	1: "user.",
	2: "system.posix_acl_access",
	3: "system.posix_acl_default",
	4: "trusted.",
	6: "security.",
}

// splitXattrName finds the short prefix index for name; ok is false when none fits.
func splitXattrName(name string) (idx uint8, suffix string, ok bool) {
	best := -1
	for i, p := range xattrPrefixes {
		if strings.HasPrefix(name, p) && len(p) > best {
			best, idx = len(p), i
		}
	}
	if best < 0 || (idx == 2 || idx == 3) && len(name) != best {
		return 0, "", false
	}
	return idx, name[best:], true
}
