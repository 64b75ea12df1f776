package sparse

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/safeio"
)

// Chunk describes one chunk as stored in the sparse file.
type Chunk struct {
	Index      int       `json:"index"`
	Type       ChunkType `json:"type"`
	Offset     int64     `json:"offset"`      // of the chunk header in the sparse file
	DataOffset int64     `json:"data_offset"` // of the chunk's payload in the sparse file
	DataSize   int64     `json:"data_size"`   // total_sz minus the chunk header size
	Block      uint32    `json:"block"`       // first output block
	Blocks     uint32    `json:"blocks"`      // chunk_sz: output blocks covered (0 for CRC32)
	Value      uint32    `json:"value"`       // fill value (FILL) or checksum (CRC32)
}

// ChunkCounts counts chunks by type.
type ChunkCounts struct {
	Raw      int `json:"raw"`
	Fill     int `json:"fill"`
	DontCare int `json:"dont_care"`
	CRC32    int `json:"crc32"`
}

// Info is a JSON-friendly summary of a sparse file for `romforge inspect`.
type Info struct {
	Format         string      `json:"format"`
	Version        string      `json:"version"`
	FileSize       int64       `json:"file_size"`
	BlockSize      uint32      `json:"block_size"`
	TotalBlocks    uint32      `json:"total_blocks"`
	TotalChunks    uint32      `json:"total_chunks"`
	ExpandedSize   int64       `json:"expanded_size"`
	Chunks         ChunkCounts `json:"chunks"`
	RawBlocks      int64       `json:"raw_blocks"`
	FillBlocks     int64       `json:"fill_blocks"`
	DontCareBlocks int64       `json:"dont_care_blocks"`
	ImageChecksum  uint32      `json:"image_checksum"`
}

// span is a run of the expanded image with one source: file bytes, a fill word, or zeros.
type span struct {
	start int64 // offset in the expanded image
	src   int64 // offset of the bytes in the sparse file (raw spans)
	fill  uint32
	kind  ChunkType // ChunkRaw, ChunkFill or ChunkDontCare
}

// Image is the expanded view of a sparse file. It implements image.Image; reads are served from the
// sparse file through a chunk index, nothing is expanded ahead of time.
type Image struct {
	ra     io.ReaderAt
	size   int64 // of the sparse file
	hdr    Header
	spans  []span
	counts ChunkCounts
	blocks [3]int64 // raw, fill, dont care
	crcs   []crcPoint
}

// crcPoint is a CRC32 chunk: the running CRC of the expanded image up to at must equal value.
type crcPoint struct {
	at     int64 // expanded offset the chunk follows
	value  uint32
	chunk  int
	offset int64 // of the chunk header in the file
}

var _ image.Image = (*Image)(nil)

// IsSparse reports whether ra starts with the sparse magic.
func IsSparse(ra io.ReaderAt) bool {
	var b [4]byte
	if _, err := ra.ReadAt(b[:], 0); err != nil {
		return false
	}
	return HasMagic(b[:])
}

// HasMagic reports whether head starts with the sparse magic.
func HasMagic(head []byte) bool { return len(head) >= 4 && binary.LittleEndian.Uint32(head) == Magic }

// NewReader parses the sparse file of the given size held by ra and validates every header field and
// chunk against it. Only chunk headers are read; the index costs a few dozen bytes per chunk.
func NewReader(ra io.ReaderAt, size int64) (*Image, error) {
	m := &Image{ra: ra, size: size}
	var pos int64
	hdr, err := parse(ra, size, func(c *Chunk) error {
		if c.Type == ChunkCRC32 {
			m.counts.CRC32++
			if len(m.crcs) < maxCRCPoints {
				m.crcs = append(m.crcs, crcPoint{at: pos, value: c.Value, chunk: c.Index, offset: c.Offset})
			}
			return nil
		}
		switch c.Type {
		case ChunkRaw:
			m.counts.Raw++
			m.blocks[0] += int64(c.Blocks)
		case ChunkFill:
			m.counts.Fill++
			m.blocks[1] += int64(c.Blocks)
		case ChunkDontCare:
			m.counts.DontCare++
			m.blocks[2] += int64(c.Blocks)
		}
		if c.Blocks == 0 {
			return nil
		}
		n := int64(c.Blocks) * int64(m.hdr.BlockSize)
		s := span{start: pos, kind: c.Type, src: c.DataOffset, fill: c.Value}
		pos += n
		if k := len(m.spans); k > 0 {
			last := &m.spans[k-1]
			// Adjacent holes and equal fills are one span (as libsparse merges them).
			if last.kind == s.kind && (s.kind == ChunkDontCare || (s.kind == ChunkFill && last.fill == s.fill)) {
				return nil
			}
		}
		m.spans = append(m.spans, s)
		return nil
	}, &m.hdr)
	if err != nil {
		return nil, err
	}
	m.hdr = hdr
	return m, nil
}

// parse reads and validates the header and every chunk header, calling fn for each chunk in order.
// hdrOut is filled as soon as the file header is valid, so fn may use it.
func parse(ra io.ReaderAt, size int64, fn func(*Chunk) error, hdrOut *Header) (Header, error) {
	var h Header
	var b [FileHeaderSize]byte
	if size < FileHeaderSize {
		return h, &FormatError{Chunk: -1, Msg: fmt.Sprintf("file of %d bytes is shorter than a sparse header", size)}
	}
	if _, err := ra.ReadAt(b[:], 0); err != nil {
		return h, &FormatError{Chunk: -1, Msg: "reading header", Err: eofToUnexpected(err)}
	}
	h.unmarshal(b[:])
	switch {
	case h.Magic != Magic:
		return h, &FormatError{Chunk: -1, Msg: fmt.Sprintf("bad magic %#08x (not an Android sparse image)", h.Magic)}
	case h.MajorVersion != majorVersion:
		return h, &FormatError{Chunk: -1, Offset: 4, Msg: fmt.Sprintf("unsupported major version %d", h.MajorVersion)}
	case h.FileHdrSize < FileHeaderSize:
		return h, &FormatError{Chunk: -1, Offset: 8, Msg: fmt.Sprintf("file header size %d < %d", h.FileHdrSize, FileHeaderSize)}
	case h.ChunkHdrSize < ChunkHeaderSize:
		return h, &FormatError{Chunk: -1, Offset: 10, Msg: fmt.Sprintf("chunk header size %d < %d", h.ChunkHdrSize, ChunkHeaderSize)}
	case h.BlockSize == 0 || h.BlockSize%4 != 0 || h.BlockSize > maxBlockSize:
		return h, &FormatError{Chunk: -1, Offset: 12, Msg: fmt.Sprintf("block size %d is not a multiple of 4 in 4..%d", h.BlockSize, maxBlockSize)}
	case h.ExpandedSize() > maxExpanded:
		return h, &FormatError{Chunk: -1, Offset: 16, Msg: fmt.Sprintf("expanded size %d is beyond any real partition", h.ExpandedSize())}
	case int64(h.FileHdrSize) > size:
		return h, &FormatError{Chunk: -1, Offset: 8, Msg: fmt.Sprintf("file header size %d beyond the file's %d bytes", h.FileHdrSize, size)}
	}
	if hdrOut != nil {
		*hdrOut = h
	}
	// Each chunk needs at least its header, so a count the file cannot hold is rejected up front.
	if uint64(h.TotalChunks)*uint64(h.ChunkHdrSize) > uint64(size-int64(h.FileHdrSize)) {
		return h, &FormatError{Chunk: -1, Offset: 20, Msg: fmt.Sprintf("%d chunks cannot fit in a file of %d bytes", h.TotalChunks, size)}
	}
	off := int64(h.FileHdrSize)
	var block uint64
	var cb [ChunkHeaderSize]byte
	le := binary.LittleEndian
	for i := 0; i < int(h.TotalChunks); i++ {
		if err := safeio.CheckRange(off, int64(h.ChunkHdrSize), size); err != nil {
			return h, &FormatError{Chunk: i, Offset: off, Msg: "chunk header beyond end of file (truncated?)", Err: io.ErrUnexpectedEOF}
		}
		if _, err := ra.ReadAt(cb[:], off); err != nil {
			return h, &FormatError{Chunk: i, Offset: off, Msg: "reading chunk header", Err: eofToUnexpected(err)}
		}
		c := Chunk{
			Index:      i,
			Type:       ChunkType(le.Uint16(cb[0:])),
			Offset:     off,
			DataOffset: off + int64(h.ChunkHdrSize),
			Block:      uint32(block),
			Blocks:     le.Uint32(cb[4:]),
		}
		total := le.Uint32(cb[8:])
		if total < uint32(h.ChunkHdrSize) {
			return h, &FormatError{Chunk: i, Offset: off, Msg: fmt.Sprintf("total_sz %d smaller than the chunk header (%d)", total, h.ChunkHdrSize)}
		}
		c.DataSize = int64(total) - int64(h.ChunkHdrSize)
		if err := safeio.CheckRange(c.DataOffset, c.DataSize, size); err != nil {
			return h, &FormatError{Chunk: i, Offset: off, Msg: fmt.Sprintf("%s chunk data of %d bytes runs past the end of the file (truncated?)", c.Type, c.DataSize), Err: io.ErrUnexpectedEOF}
		}
		switch c.Type {
		case ChunkRaw:
			if want := int64(c.Blocks) * int64(h.BlockSize); c.DataSize != want {
				return h, &FormatError{Chunk: i, Offset: off, Msg: fmt.Sprintf("raw chunk of %d blocks carries %d bytes, want %d", c.Blocks, c.DataSize, want)}
			}
		case ChunkFill, ChunkCRC32:
			if c.DataSize != 4 {
				return h, &FormatError{Chunk: i, Offset: off, Msg: fmt.Sprintf("%s chunk carries %d bytes, want 4", c.Type, c.DataSize)}
			}
			var v [4]byte
			if _, err := ra.ReadAt(v[:], c.DataOffset); err != nil {
				return h, &FormatError{Chunk: i, Offset: off, Msg: "reading chunk value", Err: eofToUnexpected(err)}
			}
			c.Value = le.Uint32(v[:])
			if c.Type == ChunkCRC32 {
				c.Blocks = 0 // libsparse ignores chunk_sz here; so do we
			}
		case ChunkDontCare:
			if c.DataSize != 0 {
				return h, &FormatError{Chunk: i, Offset: off, Msg: fmt.Sprintf("dont_care chunk carries %d bytes, want 0", c.DataSize)}
			}
		default:
			return h, &FormatError{Chunk: i, Offset: off, Msg: fmt.Sprintf("unknown chunk type %#04x", uint16(c.Type))}
		}
		block += uint64(c.Blocks)
		if block > uint64(h.TotalBlocks) {
			return h, &FormatError{Chunk: i, Offset: off, Msg: fmt.Sprintf("chunks cover more than the header's %d blocks", h.TotalBlocks)}
		}
		if err := fn(&c); err != nil {
			return h, err
		}
		off = c.DataOffset + c.DataSize
	}
	if block != uint64(h.TotalBlocks) {
		return h, &FormatError{Chunk: -1, Offset: 16, Msg: fmt.Sprintf("chunks cover %d blocks, header says %d", block, h.TotalBlocks)}
	}
	return h, nil
}

func eofToUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Header returns the file header.
func (m *Image) Header() Header { return m.hdr }

// BlockSize returns the block size of the image.
func (m *Image) BlockSize() int { return int(m.hdr.BlockSize) }

// Size implements image.Image: the expanded size, total_blks × blk_sz.
func (m *Image) Size() int64 { return m.hdr.ExpandedSize() }

// Chunks reads the chunk headers again and returns them in file order.
func (m *Image) Chunks() ([]Chunk, error) {
	out := make([]Chunk, 0, min(int(m.hdr.TotalChunks), 1<<16))
	_, err := parse(m.ra, m.size, func(c *Chunk) error { out = append(out, *c); return nil }, nil)
	return out, err
}

// Info summarises the file for inspection.
func (m *Image) Info() Info {
	return Info{
		Format:         "android_sparse",
		Version:        fmt.Sprintf("%d.%d", m.hdr.MajorVersion, m.hdr.MinorVersion),
		FileSize:       m.size,
		BlockSize:      m.hdr.BlockSize,
		TotalBlocks:    m.hdr.TotalBlocks,
		TotalChunks:    m.hdr.TotalChunks,
		ExpandedSize:   m.Size(),
		Chunks:         m.counts,
		RawBlocks:      m.blocks[0],
		FillBlocks:     m.blocks[1],
		DontCareBlocks: m.blocks[2],
		ImageChecksum:  m.hdr.ImageChecksum,
	}
}

// spanEnd returns where span i ends in the expanded image.
func (m *Image) spanEnd(i int) int64 {
	if i+1 < len(m.spans) {
		return m.spans[i+1].start
	}
	return m.Size()
}

// ReadAt implements io.ReaderAt over the expanded image.
func (m *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("sparse: negative offset %d", off)
	}
	size := m.Size()
	if off >= size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	i := sort.Search(len(m.spans), func(i int) bool { return m.spanEnd(i) > off })
	n := 0
	for n < len(p) && off < size {
		s := &m.spans[i]
		end := m.spanEnd(i)
		k := int(min(int64(len(p)-n), end-off))
		q := p[n : n+k]
		switch s.kind {
		case ChunkRaw:
			got, err := m.ra.ReadAt(q, s.src+(off-s.start))
			if got < k {
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return n + got, fmt.Errorf("sparse: reading raw data at file offset %d: %w", s.src+(off-s.start), err)
			}
		case ChunkFill:
			fillPattern(q, s.fill, off)
		default:
			clear(q)
		}
		n += k
		off += int64(k)
		i++
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fillPattern fills p with the little-endian word v repeated, phased for expanded offset off.
func fillPattern(p []byte, v uint32, off int64) {
	if v == 0 {
		clear(p)
		return
	}
	var w [4]byte
	binary.LittleEndian.PutUint32(w[:], v)
	k := int(off & 3)
	l := min(len(p), 4)
	for i := 0; i < l; i++ {
		p[i] = w[(k+i)&3]
	}
	for l < len(p) {
		l += copy(p[l:], p[:l])
	}
}

// Verify checks every CRC32 chunk against the expanded data before it and, when non-zero, the header's
// image_checksum against the whole image. CRC32 chunks are checked as libsparse's reader does (holes
// count as zeros); files written by libsparse itself, whose writer sums a fill as one block and skips
// holes, are accepted too.
func (m *Image) Verify(ctx context.Context) error {
	if m.counts.CRC32 == 0 && m.hdr.ImageChecksum == 0 {
		return nil
	}
	crc, mismatch, err := m.verify(ctx, false)
	if err != nil {
		return err
	}
	if mismatch != nil {
		_, mismatch2, err := m.verify(ctx, true)
		if err != nil {
			return err
		}
		if mismatch2 != nil {
			return mismatch
		}
	}
	if m.hdr.ImageChecksum != 0 && crc != m.hdr.ImageChecksum {
		return &FormatError{Chunk: -1, Offset: 24, Msg: fmt.Sprintf("image_checksum %#08x does not match the data (%#08x)", m.hdr.ImageChecksum, crc)}
	}
	return nil
}

// verify computes the running CRC over the whole image and reports the first CRC32 chunk that does
// not match. With libsparseWriter, fills add one block of pattern and holes add nothing, which is what
// libsparse's writer puts in the CRC32 chunks it emits.
func (m *Image) verify(ctx context.Context, libsparseWriter bool) (crc uint32, mismatch, err error) {
	const bufSize = 1 << 20
	buf := make([]byte, bufSize)
	bs := int64(m.hdr.BlockSize)
	_, err = parse(m.ra, m.size, func(c *Chunk) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int64(c.Blocks) * bs
		switch c.Type {
		case ChunkRaw:
			off := c.DataOffset
			for n > 0 {
				k := min(n, bufSize)
				if _, err := m.ra.ReadAt(buf[:k], off); err != nil {
					return &FormatError{Chunk: c.Index, Offset: off, Msg: "reading raw data", Err: eofToUnexpected(err)}
				}
				crc = crc32.Update(crc, crc32.IEEETable, buf[:k])
				off += k
				n -= k
			}
		case ChunkFill:
			if libsparseWriter {
				n = min(n, bs)
			}
			crc = crcFill(crc, c.Value, n, buf)
		case ChunkDontCare:
			if !libsparseWriter {
				crc = crcFill(crc, 0, n, buf)
			}
		case ChunkCRC32:
			if c.Value != crc && mismatch == nil {
				mismatch = &FormatError{Chunk: c.Index, Offset: c.Offset, Msg: fmt.Sprintf("CRC32 chunk says %#08x, the data before it gives %#08x (corrupt image)", c.Value, crc)}
			}
		}
		return nil
	}, nil)
	return crc, mismatch, err
}

// Open is OpenContext without cancellation.
func Open(path string) (image.Image, io.Closer, error) {
	return OpenContext(context.Background(), path)
}

// OpenContext opens path as an image: the expanded view when it is a sparse file, else the raw file.
// A sparse file carrying CRC32 chunks is verified first (Verify: a corrupt one is invalid input), since
// readers of the view have no other chance to notice; files without them cost nothing more to open.
// Close the returned Closer when done.
func OpenContext(ctx context.Context, path string) (image.Image, io.Closer, error) {
	f, err := image.OpenFile(path)
	if err != nil {
		return nil, nil, err
	}
	if !IsSparse(f) {
		return f, f, nil
	}
	m, err := NewReader(f, f.Size())
	if err == nil && m.counts.CRC32 > 0 {
		err = m.Verify(ctx)
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, f, nil
}
