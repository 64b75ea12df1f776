package sparse

import (
	"encoding/binary"
	"fmt"

	"github.com/romforge/romforge/internal/failure"
)

// Magic is the first little-endian word of every sparse file.
const Magic = 0xed26ff3a

const (
	// FileHeaderSize is the size of the version 1.0 file header; files may declare a larger one.
	FileHeaderSize = 28
	// ChunkHeaderSize is the size of the version 1.0 chunk header; files may declare a larger one.
	ChunkHeaderSize = 12

	majorVersion = 1
	minorVersion = 0

	// maxBlockSize bounds blk_sz; AOSP uses 4096 and nothing sane is larger than this.
	maxBlockSize = 64 << 20
	// maxExpanded bounds the expanded size so that block arithmetic never overflows int64.
	maxExpanded = 1 << 50
	// maxCRCPoints bounds the CRC32 chunks Expand checks as it goes (32 bytes each); a file with more is
	// verified in a separate pass first.
	maxCRCPoints = 1 << 20
)

// ChunkType is a chunk_type value.
type ChunkType uint16

// Chunk types.
const (
	ChunkRaw      ChunkType = 0xCAC1
	ChunkFill     ChunkType = 0xCAC2
	ChunkDontCare ChunkType = 0xCAC3
	ChunkCRC32    ChunkType = 0xCAC4
)

func (t ChunkType) String() string {
	switch t {
	case ChunkRaw:
		return "raw"
	case ChunkFill:
		return "fill"
	case ChunkDontCare:
		return "dont_care"
	case ChunkCRC32:
		return "crc32"
	}
	return fmt.Sprintf("unknown(%#04x)", uint16(t))
}

// Header is the sparse file header (sparse_header_t).
type Header struct {
	Magic         uint32
	MajorVersion  uint16
	MinorVersion  uint16
	FileHdrSize   uint16 // bytes of the file header; ≥ 28
	ChunkHdrSize  uint16 // bytes of each chunk header; ≥ 12
	BlockSize     uint32 // bytes per block, a multiple of 4
	TotalBlocks   uint32 // blocks in the expanded image
	TotalChunks   uint32
	ImageChecksum uint32 // CRC32 of the expanded image, 0 when absent
}

// ExpandedSize is the size of the image the file describes.
func (h *Header) ExpandedSize() int64 { return int64(h.TotalBlocks) * int64(h.BlockSize) }

func (h *Header) marshal(b []byte) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], h.Magic)
	le.PutUint16(b[4:], h.MajorVersion)
	le.PutUint16(b[6:], h.MinorVersion)
	le.PutUint16(b[8:], h.FileHdrSize)
	le.PutUint16(b[10:], h.ChunkHdrSize)
	le.PutUint32(b[12:], h.BlockSize)
	le.PutUint32(b[16:], h.TotalBlocks)
	le.PutUint32(b[20:], h.TotalChunks)
	le.PutUint32(b[24:], h.ImageChecksum)
}

func (h *Header) unmarshal(b []byte) {
	le := binary.LittleEndian
	h.Magic = le.Uint32(b[0:])
	h.MajorVersion = le.Uint16(b[4:])
	h.MinorVersion = le.Uint16(b[6:])
	h.FileHdrSize = le.Uint16(b[8:])
	h.ChunkHdrSize = le.Uint16(b[10:])
	h.BlockSize = le.Uint32(b[12:])
	h.TotalBlocks = le.Uint32(b[16:])
	h.TotalChunks = le.Uint32(b[20:])
	h.ImageChecksum = le.Uint32(b[24:])
}

// newHeader is the version 1.0 header libsparse writes.
func newHeader(blockSize uint32, totalBlocks, chunks uint32) Header {
	return Header{Magic: Magic, MajorVersion: majorVersion, MinorVersion: minorVersion,
		FileHdrSize: FileHeaderSize, ChunkHdrSize: ChunkHeaderSize, BlockSize: blockSize,
		TotalBlocks: totalBlocks, TotalChunks: chunks}
}

func putChunkHeader(b []byte, t ChunkType, blocks uint32, total uint32) {
	le := binary.LittleEndian
	le.PutUint16(b[0:], uint16(t))
	le.PutUint16(b[2:], 0)
	le.PutUint32(b[4:], blocks)
	le.PutUint32(b[8:], total)
}

// FormatError reports a malformed or unsupported sparse file. It satisfies
// errors.Is(err, failure.ErrInvalid).
type FormatError struct {
	Offset int64 // byte offset in the sparse file where the problem was found
	Chunk  int   // chunk index, or -1 for the file header
	Msg    string
	Err    error // underlying cause, if any
}

func (e *FormatError) Error() string {
	where := "header"
	if e.Chunk >= 0 {
		where = fmt.Sprintf("chunk %d", e.Chunk)
	}
	s := fmt.Sprintf("sparse: %s at offset %d: %s", where, e.Offset, e.Msg)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap lets errors.Is match both failure.ErrInvalid and the underlying cause.
func (e *FormatError) Unwrap() []error {
	if e.Err != nil {
		return []error{failure.ErrInvalid, e.Err}
	}
	return []error{failure.ErrInvalid}
}
