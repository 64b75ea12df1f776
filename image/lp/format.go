package lp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/romforge/romforge/internal/failure"
)

// On-disk constants from liblp's metadata_format.h.
const (
	GeometryMagic = 0x616c4467
	HeaderMagic   = 0x414c5030
	MajorVersion  = 10
	// MinorVersionMax is the newest metadata minor version understood (10.2: header flags).
	MinorVersionMax = 2

	SectorSize = 512
	// GeometrySize is the space one geometry copy occupies.
	GeometrySize = 4096
	// ReservedBytes at the start of the super partition are left untouched (room for a boot sector).
	ReservedBytes = 4096

	geometryStructSize = 52
	headerSizeV1_0     = 128
	headerSizeV1_2     = 256
	partitionEntrySize = 52
	extentEntrySize    = 24
	groupEntrySize     = 48
	blockDevEntrySize  = 64
	nameLen            = 36

	// minor versions that introduced fields
	versionForUpdatedAttr    = 1
	versionForExpandedHeader = 2
)

// Partition attributes.
const (
	AttrReadonly     = 1 << 0
	AttrSlotSuffixed = 1 << 1
	AttrUpdated      = 1 << 2 // v10.1
	AttrDisabled     = 1 << 3 // v10.1

	attrMaskV0 = AttrReadonly | AttrSlotSuffixed
	attrMaskV1 = AttrUpdated | AttrDisabled
)

// Header flags (v10.2).
const HeaderFlagVirtualAB = 1 << 0

// Group and block device flags.
const (
	GroupSlotSuffixed       = 1 << 0
	BlockDeviceSlotSuffixed = 1 << 0
)

// Extent target types.
const (
	TargetLinear = 0
	TargetZero   = 1
)

// DefaultAlignment is lpmake's default partition alignment (1 MiB).
const DefaultAlignment = 1 << 20

// FormatError reports malformed or inconsistent LP metadata. It satisfies errors.Is(err, failure.ErrInvalid).
type FormatError struct {
	Offset int64 // byte offset in the super image of the structure at fault, or -1
	What   string
	Msg    string
}

func (e *FormatError) Error() string {
	if e.Offset >= 0 {
		return fmt.Sprintf("lp: %s at offset %d: %s", e.What, e.Offset, e.Msg)
	}
	return fmt.Sprintf("lp: %s: %s", e.What, e.Msg)
}

// Unwrap classifies the error as invalid input.
func (e *FormatError) Unwrap() error { return failure.ErrInvalid }

func formatErr(off int64, what, format string, args ...any) error {
	return &FormatError{Offset: off, What: what, Msg: fmt.Sprintf(format, args...)}
}

// Geometry is the fixed description of the metadata area, stored at offset 4096 and again at 8192.
type Geometry struct {
	MetadataMaxSize   uint32 `json:"metadata_max_size"`
	MetadataSlotCount uint32 `json:"metadata_slot_count"`
	LogicalBlockSize  uint32 `json:"logical_block_size"`
}

// TotalMetadataSize is the bytes reserved at the start of the super device for the reserved area,
// both geometry copies and both copies of every slot.
func (g Geometry) TotalMetadataSize() uint64 {
	return ReservedBytes + (GeometrySize+uint64(g.MetadataMaxSize)*uint64(g.MetadataSlotCount))*2
}

// primaryOffset and backupOffset locate a slot's two metadata copies.
func (g Geometry) primaryOffset(slot uint32) int64 {
	return ReservedBytes + 2*GeometrySize + int64(g.MetadataMaxSize)*int64(slot)
}

func (g Geometry) backupOffset(slot uint32) int64 {
	return ReservedBytes + 2*GeometrySize + int64(g.MetadataMaxSize)*int64(g.MetadataSlotCount) + int64(g.MetadataMaxSize)*int64(slot)
}

var le = binary.LittleEndian

// marshalGeometry returns the 4096-byte geometry block with its checksum.
func marshalGeometry(g Geometry) []byte {
	b := make([]byte, GeometrySize)
	le.PutUint32(b[0:], GeometryMagic)
	le.PutUint32(b[4:], geometryStructSize)
	le.PutUint32(b[40:], g.MetadataMaxSize)
	le.PutUint32(b[44:], g.MetadataSlotCount)
	le.PutUint32(b[48:], g.LogicalBlockSize)
	sum := sha256.Sum256(b[:geometryStructSize])
	copy(b[8:40], sum[:])
	return b
}

// parseGeometry checks and decodes one geometry copy (at least geometryStructSize bytes).
func parseGeometry(b []byte, off int64) (Geometry, error) {
	if len(b) < geometryStructSize {
		return Geometry{}, formatErr(off, "geometry", "truncated (%d bytes)", len(b))
	}
	if m := le.Uint32(b); m != GeometryMagic {
		return Geometry{}, formatErr(off, "geometry", "bad magic %#08x (want %#08x): not a super image", m, GeometryMagic)
	}
	if s := le.Uint32(b[4:]); s != geometryStructSize {
		return Geometry{}, formatErr(off, "geometry", "struct size %d, want %d", s, geometryStructSize)
	}
	tmp := bytes.Clone(b[:geometryStructSize])
	clear(tmp[8:40])
	if sum := sha256.Sum256(tmp); !bytes.Equal(sum[:], b[8:40]) {
		return Geometry{}, formatErr(off, "geometry", "SHA-256 checksum mismatch")
	}
	g := Geometry{MetadataMaxSize: le.Uint32(b[40:]), MetadataSlotCount: le.Uint32(b[44:]), LogicalBlockSize: le.Uint32(b[48:])}
	switch {
	case g.MetadataSlotCount == 0:
		return g, formatErr(off, "geometry", "metadata slot count is 0")
	case g.MetadataSlotCount > maxSlots:
		return g, formatErr(off, "geometry", "metadata slot count %d is beyond any device (max %d)", g.MetadataSlotCount, maxSlots)
	case g.MetadataMaxSize%SectorSize != 0:
		return g, formatErr(off, "geometry", "metadata max size %d is not a multiple of %d", g.MetadataMaxSize, SectorSize)
	case g.MetadataMaxSize < headerSizeV1_0:
		return g, formatErr(off, "geometry", "metadata max size %d cannot hold a header", g.MetadataMaxSize)
	case g.LogicalBlockSize == 0 || g.LogicalBlockSize%SectorSize != 0:
		return g, formatErr(off, "geometry", "logical block size %d is not a positive multiple of %d", g.LogicalBlockSize, SectorSize)
	}
	return g, nil
}

// maxSlots bounds the slot count; devices use 2 or 3, anything large is corruption.
const maxSlots = 64

func putName(b []byte, s string) { copy(b[:nameLen], s) }
