package ext4

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/romforge/romforge/internal/failure"
)

var le = binary.LittleEndian

const (
	sbOffset = 1024
	sbSize   = 1024
	magic    = 0xEF53

	rootIno    = 2
	journalIno = 8
	firstIno   = 11 // first non-reserved inode (revision 0 and our writer)

	// compat
	compatHasJournal = 0x0004
	compatExtAttr    = 0x0008
	compatResizeIno  = 0x0010
	compatDirIndex   = 0x0020
	// incompat
	incompatCompression = 0x0001
	incompatFiletype    = 0x0002
	incompatRecover     = 0x0004
	incompatJournalDev  = 0x0008
	incompatMetaBG      = 0x0010
	incompatExtents     = 0x0040
	incompat64bit       = 0x0080
	incompatMMP         = 0x0100
	incompatFlexBG      = 0x0200
	incompatEAInode     = 0x0400
	incompatDirData     = 0x1000
	incompatCsumSeed    = 0x2000
	incompatLargeDir    = 0x4000
	incompatInlineData  = 0x8000
	incompatEncrypt     = 0x10000
	incompatCasefold    = 0x20000
	// ro_compat
	roSparseSuper  = 0x0001
	roLargeFile    = 0x0002
	roHugeFile     = 0x0008
	roGdtCsum      = 0x0010
	roDirNlink     = 0x0020
	roExtraIsize   = 0x0040
	roBigalloc     = 0x0200
	roMetadataCsum = 0x0400

	// incompat features this reader understands.
	incompatSupported = incompatFiletype | incompatRecover | incompatMetaBG | incompatExtents | incompat64bit |
		incompatMMP | incompatFlexBG | incompatEAInode | incompatCsumSeed | incompatLargeDir | incompatInlineData |
		incompatCasefold

	// inode flags
	flagIndex      = 0x1000
	flagHugeFile   = 0x40000
	flagExtents    = 0x80000
	flagEAInode    = 0x200000
	flagInlineData = 0x10000000

	extentMagic = 0xF30A
	xattrMagic  = 0xEA020000
)

var featureNames = []struct {
	kind int // 0 compat, 1 incompat, 2 ro_compat
	bit  uint32
	name string
}{
	{0, 0x1, "dir_prealloc"}, {0, 0x2, "imagic_inodes"}, {0, compatHasJournal, "has_journal"},
	{0, compatExtAttr, "ext_attr"}, {0, compatResizeIno, "resize_inode"}, {0, compatDirIndex, "dir_index"},
	{0, 0x200, "sparse_super2"}, {0, 0x400, "fast_commit"}, {0, 0x800, "stable_inodes"}, {0, 0x1000, "orphan_file"},
	{1, incompatCompression, "compression"}, {1, incompatFiletype, "filetype"}, {1, incompatRecover, "needs_recovery"},
	{1, incompatJournalDev, "journal_dev"}, {1, incompatMetaBG, "meta_bg"}, {1, incompatExtents, "extent"},
	{1, incompat64bit, "64bit"}, {1, incompatMMP, "mmp"}, {1, incompatFlexBG, "flex_bg"},
	{1, incompatEAInode, "ea_inode"}, {1, incompatDirData, "dirdata"}, {1, incompatCsumSeed, "metadata_csum_seed"},
	{1, incompatLargeDir, "large_dir"}, {1, incompatInlineData, "inline_data"}, {1, incompatEncrypt, "encrypt"},
	{1, incompatCasefold, "casefold"},
	{2, roSparseSuper, "sparse_super"}, {2, roLargeFile, "large_file"}, {2, roHugeFile, "huge_file"},
	{2, roGdtCsum, "uninit_bg"}, {2, roDirNlink, "dir_nlink"}, {2, roExtraIsize, "extra_isize"},
	{2, 0x100, "quota"}, {2, roBigalloc, "bigalloc"}, {2, roMetadataCsum, "metadata_csum"},
	{2, 0x1000, "read-only"}, {2, 0x2000, "project"}, {2, 0x8000, "verity"}, {2, 0x10000, "orphan_present"},
}

// FormatError reports a malformed or unsupported ext4 image.
type FormatError struct {
	Off int64 // byte offset in the image, -1 when unknown
	Msg string
}

func (e *FormatError) Error() string {
	if e.Off >= 0 {
		return fmt.Sprintf("ext4: %s (at offset %#x)", e.Msg, e.Off)
	}
	return "ext4: " + e.Msg
}

// Unwrap makes every FormatError an ErrInvalid.
func (e *FormatError) Unwrap() error { return failure.ErrInvalid }

func errf(off int64, format string, args ...any) error {
	return &FormatError{Off: off, Msg: fmt.Sprintf(format, args...)}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c is the raw (uninverted) CRC32C that ext4 and jbd2 chain: crc32c(seed, p).
func crc32c(seed uint32, p []byte) uint32 {
	return ^crc32.Update(^seed, castagnoli, p)
}

// superblock holds the fields of the ext4 superblock this package uses.
type superblock struct {
	InodesCount      uint32
	BlocksCount      uint64
	RBlocksCount     uint64
	FreeBlocks       uint64
	FreeInodes       uint32
	FirstDataBlock   uint32
	LogBlockSize     uint32
	LogClusterSize   uint32
	BlocksPerGroup   uint32
	ClustersPerGroup uint32
	InodesPerGroup   uint32
	Mtime, Wtime     uint32
	MntCount         uint16
	MaxMntCount      uint16
	State            uint16
	Errors           uint16
	MinorRev         uint16
	LastCheck        uint32
	CreatorOS        uint32
	RevLevel         uint32
	FirstIno         uint32
	InodeSize        uint16
	BlockGroupNr     uint16
	Compat           uint32
	Incompat         uint32
	ROCompat         uint32
	UUID             [16]byte
	VolumeName       [16]byte
	LastMounted      [64]byte
	ReservedGDT      uint16
	JournalUUID      [16]byte
	JournalInum      uint32
	HashSeed         [16]byte
	DefHashVersion   uint8
	JnlBackupType    uint8
	DescSize         uint16
	DefaultMountOpts uint32
	FirstMetaBG      uint32
	MkfsTime         uint32
	JnlBlocks        [17]uint32
	MinExtraIsize    uint16
	WantExtraIsize   uint16
	Flags            uint32
	LogGroupsPerFlex uint8
	ChecksumType     uint8
	ChecksumSeed     uint32
	Checksum         uint32
}

func parseSuperblock(b []byte) *superblock {
	s := &superblock{
		InodesCount:      le.Uint32(b[0:]),
		BlocksCount:      uint64(le.Uint32(b[4:])),
		RBlocksCount:     uint64(le.Uint32(b[8:])),
		FreeBlocks:       uint64(le.Uint32(b[12:])),
		FreeInodes:       le.Uint32(b[16:]),
		FirstDataBlock:   le.Uint32(b[20:]),
		LogBlockSize:     le.Uint32(b[24:]),
		LogClusterSize:   le.Uint32(b[28:]),
		BlocksPerGroup:   le.Uint32(b[32:]),
		ClustersPerGroup: le.Uint32(b[36:]),
		InodesPerGroup:   le.Uint32(b[40:]),
		Mtime:            le.Uint32(b[44:]),
		Wtime:            le.Uint32(b[48:]),
		MntCount:         le.Uint16(b[52:]),
		MaxMntCount:      le.Uint16(b[54:]),
		State:            le.Uint16(b[58:]),
		Errors:           le.Uint16(b[60:]),
		MinorRev:         le.Uint16(b[62:]),
		LastCheck:        le.Uint32(b[64:]),
		CreatorOS:        le.Uint32(b[72:]),
		RevLevel:         le.Uint32(b[76:]),
		FirstIno:         le.Uint32(b[84:]),
		InodeSize:        le.Uint16(b[88:]),
		BlockGroupNr:     le.Uint16(b[90:]),
		Compat:           le.Uint32(b[92:]),
		Incompat:         le.Uint32(b[96:]),
		ROCompat:         le.Uint32(b[100:]),
		ReservedGDT:      le.Uint16(b[206:]),
		JournalInum:      le.Uint32(b[224:]),
		DefHashVersion:   b[252],
		JnlBackupType:    b[253],
		DescSize:         le.Uint16(b[254:]),
		DefaultMountOpts: le.Uint32(b[256:]),
		FirstMetaBG:      le.Uint32(b[260:]),
		MkfsTime:         le.Uint32(b[264:]),
		MinExtraIsize:    le.Uint16(b[348:]),
		WantExtraIsize:   le.Uint16(b[350:]),
		Flags:            le.Uint32(b[352:]),
		LogGroupsPerFlex: b[372],
		ChecksumType:     b[373],
		ChecksumSeed:     le.Uint32(b[0x270:]),
		Checksum:         le.Uint32(b[0x3FC:]),
	}
	copy(s.UUID[:], b[104:120])
	copy(s.VolumeName[:], b[120:136])
	copy(s.LastMounted[:], b[136:200])
	copy(s.JournalUUID[:], b[208:224])
	copy(s.HashSeed[:], b[236:252])
	for i := range s.JnlBlocks {
		s.JnlBlocks[i] = le.Uint32(b[268+4*i:])
	}
	if s.Incompat&incompat64bit != 0 {
		s.BlocksCount |= uint64(le.Uint32(b[336:])) << 32
		s.RBlocksCount |= uint64(le.Uint32(b[340:])) << 32
		s.FreeBlocks |= uint64(le.Uint32(b[344:])) << 32
	}
	if s.RevLevel == 0 {
		s.FirstIno, s.InodeSize = firstIno, 128
	}
	return s
}

// encode writes the superblock into b (1024 bytes) with its checksum when metadata_csum is on.
func (s *superblock) encode(b []byte) {
	clear(b[:sbSize])
	le.PutUint32(b[0:], s.InodesCount)
	le.PutUint32(b[4:], uint32(s.BlocksCount))
	le.PutUint32(b[8:], uint32(s.RBlocksCount))
	le.PutUint32(b[12:], uint32(s.FreeBlocks))
	le.PutUint32(b[16:], s.FreeInodes)
	le.PutUint32(b[20:], s.FirstDataBlock)
	le.PutUint32(b[24:], s.LogBlockSize)
	le.PutUint32(b[28:], s.LogClusterSize)
	le.PutUint32(b[32:], s.BlocksPerGroup)
	le.PutUint32(b[36:], s.ClustersPerGroup)
	le.PutUint32(b[40:], s.InodesPerGroup)
	le.PutUint32(b[44:], s.Mtime)
	le.PutUint32(b[48:], s.Wtime)
	le.PutUint16(b[52:], s.MntCount)
	le.PutUint16(b[54:], s.MaxMntCount)
	le.PutUint16(b[56:], magic)
	le.PutUint16(b[58:], s.State)
	le.PutUint16(b[60:], s.Errors)
	le.PutUint16(b[62:], s.MinorRev)
	le.PutUint32(b[64:], s.LastCheck)
	le.PutUint32(b[72:], s.CreatorOS)
	le.PutUint32(b[76:], s.RevLevel)
	le.PutUint32(b[84:], s.FirstIno)
	le.PutUint16(b[88:], s.InodeSize)
	le.PutUint16(b[90:], s.BlockGroupNr)
	le.PutUint32(b[92:], s.Compat)
	le.PutUint32(b[96:], s.Incompat)
	le.PutUint32(b[100:], s.ROCompat)
	copy(b[104:], s.UUID[:])
	copy(b[120:], s.VolumeName[:])
	copy(b[136:], s.LastMounted[:])
	le.PutUint16(b[206:], s.ReservedGDT)
	copy(b[208:], s.JournalUUID[:])
	le.PutUint32(b[224:], s.JournalInum)
	copy(b[236:], s.HashSeed[:])
	b[252] = s.DefHashVersion
	b[253] = s.JnlBackupType
	le.PutUint16(b[254:], s.DescSize)
	le.PutUint32(b[256:], s.DefaultMountOpts)
	le.PutUint32(b[260:], s.FirstMetaBG)
	le.PutUint32(b[264:], s.MkfsTime)
	for i, v := range s.JnlBlocks {
		le.PutUint32(b[268+4*i:], v)
	}
	le.PutUint32(b[336:], uint32(s.BlocksCount>>32))
	le.PutUint32(b[340:], uint32(s.RBlocksCount>>32))
	le.PutUint32(b[344:], uint32(s.FreeBlocks>>32))
	le.PutUint16(b[348:], s.MinExtraIsize)
	le.PutUint16(b[350:], s.WantExtraIsize)
	le.PutUint32(b[352:], s.Flags)
	b[372] = s.LogGroupsPerFlex
	b[373] = s.ChecksumType
	le.PutUint32(b[0x270:], s.ChecksumSeed)
	if s.ROCompat&roMetadataCsum != 0 {
		le.PutUint32(b[0x3FC:], crc32c(^uint32(0), b[:0x3FC]))
	}
}

func (s *superblock) blockSize() int64 { return 1024 << s.LogBlockSize }

func (s *superblock) is64() bool { return s.Incompat&incompat64bit != 0 }

func (s *superblock) descSize() int {
	if s.is64() && s.DescSize >= 64 {
		return int(s.DescSize)
	}
	return 32
}

func (s *superblock) groupCount() uint64 {
	return (s.BlocksCount - uint64(s.FirstDataBlock) + uint64(s.BlocksPerGroup) - 1) / uint64(s.BlocksPerGroup)
}

func (s *superblock) csum() bool { return s.ROCompat&roMetadataCsum != 0 }

// csumSeed is the seed of every metadata checksum: crc32c(~0, uuid) unless the superblock stores one.
func (s *superblock) csumSeed() uint32 {
	if s.Incompat&incompatCsumSeed != 0 {
		return s.ChecksumSeed
	}
	return crc32c(^uint32(0), s.UUID[:])
}

// hasSuper reports whether group g holds a superblock backup.
func (s *superblock) hasSuper(g uint64) bool {
	if g <= 1 || s.ROCompat&roSparseSuper == 0 {
		return true
	}
	for _, b := range []uint64{3, 5, 7} {
		p := b
		for p < g {
			p *= b
		}
		if p == g {
			return true
		}
	}
	return false
}

// features lists the feature names set in the superblock, as dumpe2fs spells them.
func (s *superblock) features() []string {
	var out []string
	for _, f := range featureNames {
		v := [3]uint32{s.Compat, s.Incompat, s.ROCompat}[f.kind]
		if v&f.bit != 0 {
			out = append(out, f.name)
		}
	}
	return out
}

// groupDesc is one block group descriptor.
type groupDesc struct {
	BlockBitmap, InodeBitmap, InodeTable uint64
	FreeBlocks, FreeInodes, UsedDirs     uint32
	Flags                                uint16
	ItableUnused                         uint32
	BlockBitmapCsum, InodeBitmapCsum     uint32
	Checksum                             uint16
}

func parseGroupDesc(b []byte, wide bool) groupDesc {
	g := groupDesc{
		BlockBitmap:     uint64(le.Uint32(b[0:])),
		InodeBitmap:     uint64(le.Uint32(b[4:])),
		InodeTable:      uint64(le.Uint32(b[8:])),
		FreeBlocks:      uint32(le.Uint16(b[12:])),
		FreeInodes:      uint32(le.Uint16(b[14:])),
		UsedDirs:        uint32(le.Uint16(b[16:])),
		Flags:           le.Uint16(b[18:]),
		BlockBitmapCsum: uint32(le.Uint16(b[24:])),
		InodeBitmapCsum: uint32(le.Uint16(b[26:])),
		ItableUnused:    uint32(le.Uint16(b[28:])),
		Checksum:        le.Uint16(b[30:]),
	}
	if wide {
		g.BlockBitmap |= uint64(le.Uint32(b[32:])) << 32
		g.InodeBitmap |= uint64(le.Uint32(b[36:])) << 32
		g.InodeTable |= uint64(le.Uint32(b[40:])) << 32
		g.FreeBlocks |= uint32(le.Uint16(b[44:])) << 16
		g.FreeInodes |= uint32(le.Uint16(b[46:])) << 16
		g.UsedDirs |= uint32(le.Uint16(b[48:])) << 16
		g.ItableUnused |= uint32(le.Uint16(b[50:])) << 16
		g.BlockBitmapCsum |= uint32(le.Uint16(b[56:])) << 16
		g.InodeBitmapCsum |= uint32(le.Uint16(b[58:])) << 16
	}
	return g
}

func (g *groupDesc) encode(b []byte, wide bool) {
	clear(b)
	le.PutUint32(b[0:], uint32(g.BlockBitmap))
	le.PutUint32(b[4:], uint32(g.InodeBitmap))
	le.PutUint32(b[8:], uint32(g.InodeTable))
	le.PutUint16(b[12:], uint16(g.FreeBlocks))
	le.PutUint16(b[14:], uint16(g.FreeInodes))
	le.PutUint16(b[16:], uint16(g.UsedDirs))
	le.PutUint16(b[18:], g.Flags)
	le.PutUint16(b[24:], uint16(g.BlockBitmapCsum))
	le.PutUint16(b[26:], uint16(g.InodeBitmapCsum))
	le.PutUint16(b[28:], uint16(g.ItableUnused))
	if wide {
		le.PutUint32(b[32:], uint32(g.BlockBitmap>>32))
		le.PutUint32(b[36:], uint32(g.InodeBitmap>>32))
		le.PutUint32(b[40:], uint32(g.InodeTable>>32))
		le.PutUint16(b[44:], uint16(g.FreeBlocks>>16))
		le.PutUint16(b[46:], uint16(g.FreeInodes>>16))
		le.PutUint16(b[48:], uint16(g.UsedDirs>>16))
		le.PutUint16(b[50:], uint16(g.ItableUnused>>16))
		le.PutUint16(b[56:], uint16(g.BlockBitmapCsum>>16))
		le.PutUint16(b[58:], uint16(g.InodeBitmapCsum>>16))
	}
}

// groupDescCsum is the metadata_csum checksum of a descriptor (its checksum field treated as zero).
func groupDescCsum(seed uint32, group uint32, desc []byte) uint16 {
	var n [4]byte
	le.PutUint32(n[:], group)
	c := crc32c(seed, n[:])
	c = crc32c(c, desc[:30])
	c = crc32c(c, []byte{0, 0})
	c = crc32c(c, desc[32:])
	return uint16(c)
}

// inodeCsum is the metadata_csum checksum of an inode (checksum fields treated as zero).
func inodeCsum(seed uint32, ino uint32, raw []byte) uint32 {
	var n [8]byte
	le.PutUint32(n[:], ino)
	le.PutUint32(n[4:], le.Uint32(raw[100:])) // i_generation
	c := crc32c(seed, n[:])
	c = crc32c(c, raw[:0x7C])
	c = crc32c(c, []byte{0, 0})
	c = crc32c(c, raw[0x7E:128])
	if len(raw) > 128 {
		extra := int(le.Uint16(raw[128:]))
		c = crc32c(c, raw[128:130])
		if extra >= 4 {
			c = crc32c(c, []byte{0, 0})
			c = crc32c(c, raw[132:])
		} else {
			c = crc32c(c, raw[130:])
		}
	}
	return c
}

// ext4 file type codes in directory entries.
const (
	ftUnknown = 0
	ftReg     = 1
	ftDir     = 2
	ftChr     = 3
	ftBlk     = 4
	ftFifo    = 5
	ftSock    = 6
	ftSymlink = 7
)

func fileTypeOf(unixMode uint32) uint8 {
	switch unixMode & 0o170000 {
	case 0o100000:
		return ftReg
	case 0o040000:
		return ftDir
	case 0o020000:
		return ftChr
	case 0o060000:
		return ftBlk
	case 0o010000:
		return ftFifo
	case 0o140000:
		return ftSock
	case 0o120000:
		return ftSymlink
	}
	return ftUnknown
}

// xattr name prefixes by on-disk name index.
var xattrPrefixes = map[uint8]string{
	1: "user.",
	2: "system.posix_acl_access",
	3: "system.posix_acl_default",
	4: "trusted.",
	6: "security.",
	7: "system.",
	8: "system.richacl",
}

// xattrIndex splits a full xattr name into the on-disk index and the rest.
func xattrIndex(name string) (uint8, string) {
	best, bestLen := uint8(0), 0
	for idx, p := range xattrPrefixes {
		if len(p) > bestLen && len(name) >= len(p) && name[:len(p)] == p {
			if (idx == 2 || idx == 3 || idx == 8) && name != p {
				continue // whole-name indexes only match exactly
			}
			best, bestLen = idx, len(p)
		}
	}
	return best, name[bestLen:]
}

// xattrEntryHash is ext4's hash of one xattr entry (name, then value words).
func xattrEntryHash(name []byte, value []byte) uint32 {
	var h uint32
	for _, c := range name {
		h = (h << 5) ^ (h >> 27) ^ uint32(c)
	}
	for i := 0; i < len(value); i += 4 {
		var w [4]byte
		copy(w[:], value[i:])
		h = (h << 16) ^ (h >> 16) ^ le.Uint32(w[:])
	}
	return h
}
