package dtbo

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
)

// Magic numbers (both stored big-endian).
const (
	Magic    = 0xd7b7ab1e // dt_table_header.magic
	FDTMagic = 0xd00dfeed // a flattened device tree (DTB/DTBO)

	headerLen = 32 // sizeof(dt_table_header)
	entryLen  = 32 // sizeof(dt_table_entry), both versions
)

// FormatError reports a corrupt or unsupported dtbo image.
type FormatError struct {
	Offset int64
	Msg    string
}

func (e *FormatError) Error() string { return fmt.Sprintf("dtbo: at offset %d: %s", e.Offset, e.Msg) }

// Unwrap makes a FormatError an ErrInvalid (exit 4).
func (e *FormatError) Unwrap() error { return failure.ErrInvalid }

// Header is dt_table_header.
type Header struct {
	Magic           uint32 `json:"magic"`
	TotalSize       uint32 `json:"total_size"`
	HeaderSize      uint32 `json:"header_size"`
	DTEntrySize     uint32 `json:"dt_entry_size"`
	DTEntryCount    uint32 `json:"dt_entry_count"`
	DTEntriesOffset uint32 `json:"dt_entries_offset"`
	PageSize        uint32 `json:"page_size"`
	Version         uint32 `json:"version"` // reserved (0) before version 1 existed
}

// Entry is dt_table_entry (version 0) or dt_table_entry_v1, plus what the blob itself says.
type Entry struct {
	DTSize   uint32    `json:"dt_size"`
	DTOffset uint32    `json:"dt_offset"`
	ID       uint32    `json:"id"`
	Rev      uint32    `json:"rev"`
	Flags    uint32    `json:"flags"`  // version 1 only: low 4 bits are the compression
	Custom   [4]uint32 `json:"custom"` // version 1 has three custom words (the fourth stays 0)

	Compression string `json:"compression"`   // "none", "zlib", "gzip" or "unknown(N)"
	FDTMagicOK  bool   `json:"fdt_magic_ok"`  // an uncompressed blob starts with 0xd00dfeed
	FDTSize     uint32 `json:"fdt_totalsize"` // the blob's own totalsize field (uncompressed blobs)
}

// Image is a parsed dtbo image.
type Image struct {
	Header  Header
	Entries []Entry

	r    io.ReaderAt
	size int64
}

// IsDTBO reports whether head starts with the dt_table magic.
func IsDTBO(head []byte) bool {
	return len(head) >= 4 && binary.BigEndian.Uint32(head) == Magic
}

// Parse reads the header and entry table of a dtbo image of the given size (a partition dump may be
// larger than total_size).
func Parse(ra io.ReaderAt, size int64) (*Image, error) {
	if size < headerLen {
		return nil, &FormatError{0, fmt.Sprintf("%d bytes is too short for a dt_table header", size)}
	}
	var hb [headerLen]byte
	if _, err := ra.ReadAt(hb[:], 0); err != nil {
		return nil, &FormatError{0, "reading the header: " + err.Error()}
	}
	be := binary.BigEndian
	h := Header{
		Magic: be.Uint32(hb[0:]), TotalSize: be.Uint32(hb[4:]), HeaderSize: be.Uint32(hb[8:]),
		DTEntrySize: be.Uint32(hb[12:]), DTEntryCount: be.Uint32(hb[16:]), DTEntriesOffset: be.Uint32(hb[20:]),
		PageSize: be.Uint32(hb[24:]), Version: be.Uint32(hb[28:]),
	}
	switch {
	case h.Magic != Magic:
		return nil, &FormatError{0, fmt.Sprintf("magic %#08x is not %#08x: not a dtbo image", h.Magic, uint32(Magic))}
	case int64(h.TotalSize) > size:
		return nil, &FormatError{4, fmt.Sprintf("total_size %d exceeds the %d-byte input: truncated", h.TotalSize, size)}
	case h.HeaderSize < headerLen || h.HeaderSize > h.TotalSize:
		return nil, &FormatError{8, fmt.Sprintf("header_size %d is invalid", h.HeaderSize)}
	case h.DTEntrySize < entryLen:
		return nil, &FormatError{12, fmt.Sprintf("dt_entry_size %d is smaller than %d", h.DTEntrySize, entryLen)}
	case h.Version > 1:
		return nil, &FormatError{28, fmt.Sprintf("dt_table version %d is not supported (0 and 1 are)", h.Version)}
	}
	tableLen := uint64(h.DTEntryCount) * uint64(h.DTEntrySize)
	if uint64(h.DTEntriesOffset)+tableLen > uint64(h.TotalSize) || h.DTEntriesOffset < h.HeaderSize && h.DTEntryCount > 0 {
		return nil, &FormatError{16, fmt.Sprintf("%d entries of %d bytes at offset %d do not fit in total_size %d", h.DTEntryCount, h.DTEntrySize, h.DTEntriesOffset, h.TotalSize)}
	}
	tab, err := safeio.ReadDataAt(ra, tableLen, int64(h.DTEntriesOffset))
	if err != nil {
		return nil, &FormatError{int64(h.DTEntriesOffset), "reading the entry table: " + err.Error()}
	}
	im := &Image{Header: h, r: ra, size: size}
	im.Entries = make([]Entry, 0, safeio.SliceCap(uint64(h.DTEntryCount), 64))
	for i := 0; i < int(h.DTEntryCount); i++ {
		off := int64(h.DTEntriesOffset) + int64(i)*int64(h.DTEntrySize)
		b := tab[i*int(h.DTEntrySize):]
		e := Entry{DTSize: be.Uint32(b[0:]), DTOffset: be.Uint32(b[4:]), ID: be.Uint32(b[8:]), Rev: be.Uint32(b[12:])}
		if h.Version >= 1 {
			e.Flags = be.Uint32(b[16:])
			for j := 0; j < 3; j++ {
				e.Custom[j] = be.Uint32(b[20+4*j:])
			}
		} else {
			for j := 0; j < 4; j++ {
				e.Custom[j] = be.Uint32(b[16+4*j:])
			}
		}
		if uint64(e.DTOffset)+uint64(e.DTSize) > uint64(h.TotalSize) {
			return nil, &FormatError{off, fmt.Sprintf("entry %d: %d bytes at offset %d run past total_size %d", i, e.DTSize, e.DTOffset, h.TotalSize)}
		}
		switch c := e.Flags & 0xf; c {
		case 0:
			e.Compression = "none"
		case 1:
			e.Compression = "zlib"
		case 2:
			e.Compression = "gzip"
		default:
			e.Compression = fmt.Sprintf("unknown(%d)", c)
		}
		if e.Compression == "none" && e.DTSize >= 8 {
			var fb [8]byte
			if _, err := ra.ReadAt(fb[:], int64(e.DTOffset)); err != nil {
				return nil, &FormatError{int64(e.DTOffset), fmt.Sprintf("entry %d: reading the blob: %v", i, err)}
			}
			e.FDTMagicOK = be.Uint32(fb[:]) == FDTMagic
			e.FDTSize = be.Uint32(fb[4:])
		}
		im.Entries = append(im.Entries, e)
	}
	return im, nil
}

// Open returns a reader over entry i's blob.
func (im *Image) Open(i int) *io.SectionReader {
	if i < 0 || i >= len(im.Entries) {
		return nil
	}
	e := im.Entries[i]
	return io.NewSectionReader(im.r, int64(e.DTOffset), int64(e.DTSize))
}

// Info is the JSON-able summary for inspect.
type Info struct {
	Header  Header   `json:"header"`
	Entries []Entry  `json:"entries"`
	Notes   []string `json:"notes,omitempty"`
}

// Info summarises the image; Notes point out blobs whose FDT magic or size looks wrong.
func (im *Image) Info() Info {
	info := Info{Header: im.Header, Entries: im.Entries}
	if info.Entries == nil {
		info.Entries = []Entry{}
	}
	for i, e := range im.Entries {
		switch {
		case e.Compression != "none":
		case !e.FDTMagicOK:
			info.Notes = append(info.Notes, fmt.Sprintf("entry %d (id %#x) does not start with the FDT magic 0xd00dfeed", i, e.ID))
		case e.FDTSize > e.DTSize:
			info.Notes = append(info.Notes, fmt.Sprintf("entry %d (id %#x): the blob says %d bytes, the table %d", i, e.ID, e.FDTSize, e.DTSize))
		}
	}
	return info
}

// MagicBytes is the big-endian dt_table magic, for format sniffing.
var MagicBytes = []byte{0xd7, 0xb7, 0xab, 0x1e}
