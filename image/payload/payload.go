package payload

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
)

// Magic starts every payload.
const Magic = "CrAU"

// HeaderSize is the size of a version-2 header: magic, version, manifest size, metadata signature size.
const HeaderSize = 24

// Limits on what the header may claim, on top of the real file size.
const (
	maxManifest    = 256 << 20
	maxMetadataSig = 16 << 20
)

// FormatError reports a malformed or unsupported payload.
type FormatError struct {
	Offset int64 // -1 when not tied to an offset
	Msg    string
}

func (e *FormatError) Error() string {
	if e.Offset < 0 {
		return "payload: " + e.Msg
	}
	return fmt.Sprintf("payload: offset %d: %s", e.Offset, e.Msg)
}

// Unwrap makes every FormatError an invalid-input failure.
func (e *FormatError) Unwrap() error { return failure.ErrInvalid }

func formatErr(off int64, format string, args ...any) error {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// Header is the fixed start of a payload.
type Header struct {
	Version               uint64
	ManifestSize          uint64
	MetadataSignatureSize uint32
}

// ParseHeader decodes the first HeaderSize bytes of a payload.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < 4 || string(b[:4]) != Magic {
		return h, formatErr(0, "not an update_engine payload (no %q magic)", Magic)
	}
	if len(b) < 12 {
		return h, formatErr(0, "truncated header")
	}
	h.Version = binary.BigEndian.Uint64(b[4:])
	switch {
	case h.Version == 1:
		return h, formatErr(4, "payload version 1 (Chrome OS and pre-Android 8 delta format) is not supported; only version 2 (A/B OTA) payloads are")
	case h.Version != 2:
		return h, formatErr(4, "unknown payload version %d (only 2 is supported)", h.Version)
	}
	if len(b) < HeaderSize {
		return h, formatErr(0, "truncated header")
	}
	h.ManifestSize = binary.BigEndian.Uint64(b[12:])
	h.MetadataSignatureSize = binary.BigEndian.Uint32(b[20:])
	return h, nil
}

// Payload is an opened payload.
type Payload struct {
	ra       io.ReaderAt
	size     int64
	Header   Header
	Manifest *Manifest
	// DataOffset is where the data blobs start (after header, manifest and metadata signature).
	DataOffset int64
	// Metadata is the header and manifest bytes (what the metadata signature signs).
	manifestRaw []byte
}

// NewReader reads the header and manifest of the payload in ra (size bytes).
func NewReader(ra io.ReaderAt, size int64) (*Payload, error) {
	var hb [HeaderSize]byte
	n, err := ra.ReadAt(hb[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("payload: reading header: %w", err)
	}
	h, err := ParseHeader(hb[:n])
	if err != nil {
		return nil, err
	}
	rest := size - HeaderSize
	if h.ManifestSize == 0 || h.ManifestSize > maxManifest || int64(h.ManifestSize) > rest {
		return nil, formatErr(12, "manifest size %d does not fit the %d-byte file", h.ManifestSize, size)
	}
	if h.MetadataSignatureSize > maxMetadataSig || int64(h.MetadataSignatureSize) > rest-int64(h.ManifestSize) {
		return nil, formatErr(20, "metadata signature size %d does not fit the %d-byte file", h.MetadataSignatureSize, size)
	}
	raw, err := safeio.ReadDataAt(ra, h.ManifestSize, HeaderSize)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, formatErr(HeaderSize, "truncated manifest")
		}
		return nil, fmt.Errorf("payload: reading manifest: %w", err)
	}
	m, err := DecodeManifest(raw)
	if err != nil {
		return nil, formatErr(HeaderSize, "manifest: %v", err)
	}
	p := &Payload{ra: ra, size: size, Header: h, Manifest: m, manifestRaw: raw,
		DataOffset: HeaderSize + int64(h.ManifestSize) + int64(h.MetadataSignatureSize)}
	if err := p.check(); err != nil {
		return nil, err
	}
	return p, nil
}

// check validates what does not depend on a partition being extracted.
func (p *Payload) check() error {
	m := p.Manifest
	if bs := m.BlockSize; bs < 512 || bs > 1<<20 || bs&(bs-1) != 0 {
		return formatErr(-1, "block size %d is not a power of two between 512 and 1 MiB", bs)
	}
	seen := map[string]bool{}
	for i := range m.Partitions {
		name := m.Partitions[i].Name
		if name == "" || strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." || len(name) > 128 {
			return formatErr(-1, "partition %d has an unusable name %.60q", i, name)
		}
		if seen[name] {
			return formatErr(-1, "partition %q listed twice", name)
		}
		seen[name] = true
		if m.Partitions[i].NewInfo == nil {
			return formatErr(-1, "partition %q has no new_partition_info", name)
		}
	}
	if m.HasSignatures {
		end := m.SignaturesOffset + m.SignaturesSize
		if end < m.SignaturesOffset || int64(end) < 0 || int64(end) > p.size-p.DataOffset {
			return formatErr(-1, "signature blob [%d, +%d) lies beyond the data (%d bytes)", m.SignaturesOffset, m.SignaturesSize, p.size-p.DataOffset)
		}
	}
	return nil
}

// Size is the size of the payload in bytes.
func (p *Payload) Size() int64 { return p.size }

// Open opens a payload.bin or an A/B OTA zip holding one (stored uncompressed, as update_engine requires:
// it is read in place through a section of the zip, never copied).
func Open(path string) (*Payload, io.Closer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	ra, size, err := Locate(f, st.Size())
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	p, err := NewReader(ra, size)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, f, nil
}

// Locate returns the payload inside r: r itself when it starts with the payload magic, or the stored
// payload.bin entry when r is a zip.
func Locate(r io.ReaderAt, size int64) (io.ReaderAt, int64, error) {
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	if string(magic[:]) == Magic {
		return r, size, nil
	}
	if !bytes.Equal(magic[:], []byte("PK\x03\x04")) {
		return nil, 0, formatErr(0, "neither a payload.bin nor a zip")
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, 0, formatErr(-1, "reading OTA zip: %v", err)
	}
	for _, zf := range zr.File {
		if zf.Name != "payload.bin" {
			continue
		}
		if zf.Method != zip.Store {
			return nil, 0, formatErr(-1, "payload.bin in the zip is compressed (method %d); A/B OTA zips store it uncompressed", zf.Method)
		}
		off, err := zf.DataOffset()
		if err != nil {
			return nil, 0, formatErr(-1, "payload.bin entry: %v", err)
		}
		n := int64(zf.UncompressedSize64)
		if safeio.CheckRange(off, n, size) != nil || zf.CompressedSize64 != zf.UncompressedSize64 {
			return nil, 0, formatErr(off, "payload.bin entry (%d bytes) lies beyond the zip's %d bytes", n, size)
		}
		return io.NewSectionReader(r, off, n), n, nil
	}
	return nil, 0, formatErr(-1, "zip has no payload.bin (not an A/B OTA package)")
}

// Partition summarises one partition of the payload.
type Partition struct {
	Name           string         `json:"name"`
	Size           uint64         `json:"size"`
	SHA256         string         `json:"sha256"`
	OldSize        uint64         `json:"old_size,omitempty"`
	OldSHA256      string         `json:"old_sha256,omitempty"`
	Operations     int            `json:"operations"`
	OpCounts       map[string]int `json:"op_counts"`
	DataSize       uint64         `json:"data_size"`
	Compression    []string       `json:"compression"`
	FilesystemType string         `json:"filesystem_type,omitempty"`
	Version        string         `json:"version,omitempty"`
	Delta          bool           `json:"delta"`
}

var compressionOf = map[OpType]string{
	OpReplace: "none", OpReplaceBZ: "bzip2", OpReplaceXZ: "xz", OpZSTD: "zstd",
	OpSourceBSDiff: "bsdiff", OpBrotliBSDiff: "bsdiff-brotli", OpPuffDiff: "puffdiff",
	OpZucchini: "zucchini", OpLZ4DiffBSDiff: "lz4diff", OpLZ4DiffPuffDiff: "lz4diff",
}

func summarise(pu *PartitionUpdate) Partition {
	s := Partition{Name: pu.Name, Operations: len(pu.Operations), OpCounts: map[string]int{},
		FilesystemType: pu.FilesystemType, Version: pu.Version, Compression: []string{}}
	if pu.NewInfo != nil {
		s.Size, s.SHA256 = pu.NewInfo.Size, hex.EncodeToString(pu.NewInfo.Hash)
	}
	if pu.OldInfo != nil {
		s.OldSize, s.OldSHA256 = pu.OldInfo.Size, hex.EncodeToString(pu.OldInfo.Hash)
	}
	comp := map[string]bool{}
	for i := range pu.Operations {
		op := &pu.Operations[i]
		s.OpCounts[op.Type.String()]++
		s.DataSize += op.DataLength
		if c, ok := compressionOf[op.Type]; ok {
			comp[c] = true
		}
		switch op.Type {
		case OpSourceCopy, OpSourceBSDiff, OpBrotliBSDiff, OpPuffDiff, OpZucchini, OpLZ4DiffBSDiff, OpLZ4DiffPuffDiff:
			s.Delta = true
		}
	}
	for c := range comp {
		s.Compression = append(s.Compression, c)
	}
	sort.Strings(s.Compression)
	return s
}

// Partitions lists the partitions in manifest order.
func (p *Payload) Partitions() []Partition {
	out := make([]Partition, len(p.Manifest.Partitions))
	for i := range p.Manifest.Partitions {
		out[i] = summarise(&p.Manifest.Partitions[i])
	}
	return out
}

// Info is a JSON-able summary of a payload.
type Info struct {
	Format                 string                  `json:"format"`
	Version                uint64                  `json:"version"`
	FileSize               int64                   `json:"file_size"`
	ManifestSize           uint64                  `json:"manifest_size"`
	MetadataSignatureSize  uint32                  `json:"metadata_signature_size"`
	DataOffset             int64                   `json:"data_offset"`
	BlockSize              uint32                  `json:"block_size"`
	MinorVersion           uint32                  `json:"minor_version"`
	Kind                   string                  `json:"kind"` // "full" or "delta"
	Signed                 bool                    `json:"signed"`
	PartialUpdate          bool                    `json:"partial_update,omitempty"`
	MaxTimestamp           int64                   `json:"max_timestamp,omitempty"`
	SecurityPatchLevel     string                  `json:"security_patch_level,omitempty"`
	Partitions             []Partition             `json:"partitions"`
	OpCounts               map[string]int          `json:"op_counts"`
	DynamicPartitionGroups []DynamicPartitionGroup `json:"dynamic_partition_groups,omitempty"`
	SnapshotEnabled        bool                    `json:"snapshot_enabled,omitempty"`
	VABCEnabled            bool                    `json:"vabc_enabled,omitempty"`
	VABCCompressionParam   string                  `json:"vabc_compression_param,omitempty"`
}

// Info summarises the payload.
func (p *Payload) Info() Info {
	m := p.Manifest
	in := Info{Format: "payload", Version: p.Header.Version, FileSize: p.size, ManifestSize: p.Header.ManifestSize,
		MetadataSignatureSize: p.Header.MetadataSignatureSize, DataOffset: p.DataOffset, BlockSize: m.BlockSize,
		MinorVersion: m.MinorVersion, Kind: "full", Signed: m.HasSignatures && m.SignaturesSize > 0,
		PartialUpdate: m.PartialUpdate, MaxTimestamp: m.MaxTimestamp, SecurityPatchLevel: m.SecurityPatchLevel,
		Partitions: p.Partitions(), OpCounts: map[string]int{}}
	for _, pt := range in.Partitions {
		if pt.Delta || pt.OldSize > 0 {
			in.Kind = "delta"
		}
		for k, v := range pt.OpCounts {
			in.OpCounts[k] += v
		}
	}
	if d := m.Dynamic; d != nil {
		in.DynamicPartitionGroups = d.Groups
		in.SnapshotEnabled, in.VABCEnabled, in.VABCCompressionParam = d.SnapshotEnabled, d.VABCEnabled, d.VABCCompressionParam
	}
	return in
}

// partition finds a partition by name.
func (p *Payload) partition(name string) (*PartitionUpdate, error) {
	for i := range p.Manifest.Partitions {
		if p.Manifest.Partitions[i].Name == name {
			return &p.Manifest.Partitions[i], nil
		}
	}
	var names []string
	for i := range p.Manifest.Partitions {
		if i == 20 { // a hostile manifest may list millions; the message stays short
			names = append(names, fmt.Sprintf("… %d more", len(p.Manifest.Partitions)-i))
			break
		}
		names = append(names, p.Manifest.Partitions[i].Name)
	}
	return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("payload: no partition %q (the payload has: %s)", name, strings.Join(names, ", ")))
}
