package payload

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// OpType is an InstallOperation type (update_metadata.proto).
type OpType int32

// Operation types. MOVE and BSDIFF are the deprecated in-place kinds of version-1 payloads.
const (
	OpReplace         OpType = 0
	OpReplaceBZ       OpType = 1
	OpMove            OpType = 2
	OpBSDiff          OpType = 3
	OpSourceCopy      OpType = 4
	OpSourceBSDiff    OpType = 5
	OpZero            OpType = 6
	OpDiscard         OpType = 7
	OpReplaceXZ       OpType = 8
	OpPuffDiff        OpType = 9
	OpBrotliBSDiff    OpType = 10
	OpZucchini        OpType = 11
	OpLZ4DiffBSDiff   OpType = 12
	OpLZ4DiffPuffDiff OpType = 13
	OpZSTD            OpType = 14
)

var opNames = map[OpType]string{
	OpReplace: "REPLACE", OpReplaceBZ: "REPLACE_BZ", OpMove: "MOVE", OpBSDiff: "BSDIFF",
	OpSourceCopy: "SOURCE_COPY", OpSourceBSDiff: "SOURCE_BSDIFF", OpZero: "ZERO", OpDiscard: "DISCARD",
	OpReplaceXZ: "REPLACE_XZ", OpPuffDiff: "PUFFDIFF", OpBrotliBSDiff: "BROTLI_BSDIFF", OpZucchini: "ZUCCHINI",
	OpLZ4DiffBSDiff: "LZ4DIFF_BSDIFF", OpLZ4DiffPuffDiff: "LZ4DIFF_PUFFDIFF", OpZSTD: "ZSTD",
}

func (t OpType) String() string {
	if s, ok := opNames[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE_%d", int32(t))
}

// Extent is a run of blocks.
type Extent struct {
	StartBlock uint64
	NumBlocks  uint64
}

// Operation is one InstallOperation.
type Operation struct {
	Type       OpType
	DataOffset uint64 // relative to the start of the data blobs
	DataLength uint64
	HasData    bool // data_offset or data_length present
	SrcExtents []Extent
	SrcLength  uint64
	DstExtents []Extent
	DstLength  uint64
	DataSHA256 []byte
	SrcSHA256  []byte
}

// PartitionInfo is a partition's size and SHA-256.
type PartitionInfo struct {
	Size uint64
	Hash []byte
}

// PartitionUpdate is one partition of the manifest.
type PartitionUpdate struct {
	Name            string
	RunPostinstall  bool
	PostinstallPath string
	FilesystemType  string
	OldInfo         *PartitionInfo
	NewInfo         *PartitionInfo
	Operations      []Operation
	Version         string
	EstimateCOWSize uint64
	MergeOps        int // CowMergeOperations (counted, not kept)
}

// DynamicPartitionGroup is a group of logical partitions in super.
type DynamicPartitionGroup struct {
	Name       string   `json:"name"`
	Size       uint64   `json:"size"`
	Partitions []string `json:"partitions"`
}

// DynamicPartitionMetadata describes the super partition layout the update expects.
type DynamicPartitionMetadata struct {
	Groups               []DynamicPartitionGroup
	SnapshotEnabled      bool
	VABCEnabled          bool
	VABCCompressionParam string
	COWVersion           uint32
}

// Manifest is the DeltaArchiveManifest.
type Manifest struct {
	BlockSize          uint32
	SignaturesOffset   uint64
	SignaturesSize     uint64
	HasSignatures      bool
	MinorVersion       uint32
	Partitions         []PartitionUpdate
	MaxTimestamp       int64
	Dynamic            *DynamicPartitionMetadata
	PartialUpdate      bool
	SecurityPatchLevel string // field 18 in newer update_metadata.proto
}

// Bounds on what a manifest may describe; far beyond any real OTA, small enough that a hostile manifest
// cannot make us allocate without limit.
const (
	maxOps     = 1 << 22
	maxExtents = 1 << 24
)

var errWire = errors.New("malformed protobuf")

// field is one decoded protobuf field.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64 // varint, fixed32, fixed64
	b   []byte // bytes
}

// fields calls fn for every field of the message b.
func fields(b []byte, fn func(f field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errWire
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.v = uint64(v)
		case protowire.Fixed64Type:
			f.v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errWire
		}
		b = b[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

type counts struct{ ops, extents int }

func (f field) varint(name string) (uint64, error) {
	if f.typ != protowire.VarintType {
		return 0, fmt.Errorf("%s: wrong wire type %d", name, f.typ)
	}
	return f.v, nil
}

func (f field) bytes(name string) ([]byte, error) {
	if f.typ != protowire.BytesType {
		return nil, fmt.Errorf("%s: wrong wire type %d", name, f.typ)
	}
	return f.b, nil
}

func decodeExtent(b []byte) (Extent, error) {
	var e Extent
	err := fields(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			e.StartBlock, err = f.varint("extent.start_block")
		case 2:
			e.NumBlocks, err = f.varint("extent.num_blocks")
		}
		return err
	})
	return e, err
}

func decodeInfo(b []byte) (*PartitionInfo, error) {
	pi := &PartitionInfo{}
	err := fields(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			pi.Size, err = f.varint("partition_info.size")
		case 2:
			pi.Hash, err = f.bytes("partition_info.hash")
		}
		return err
	})
	return pi, err
}

func decodeOp(b []byte, c *counts) (Operation, error) {
	var op Operation
	err := fields(b, func(f field) error {
		var err error
		var v uint64
		var bs []byte
		switch f.num {
		case 1:
			v, err = f.varint("type")
			if v > 1<<31 {
				return fmt.Errorf("type %d out of range", v)
			}
			op.Type = OpType(v)
		case 2:
			op.DataOffset, err = f.varint("data_offset")
			op.HasData = true
		case 3:
			op.DataLength, err = f.varint("data_length")
			op.HasData = true
		case 4, 6:
			if bs, err = f.bytes("extent"); err != nil {
				return err
			}
			if c.extents++; c.extents > maxExtents {
				return fmt.Errorf("more than %d extents", maxExtents)
			}
			e, err := decodeExtent(bs)
			if err != nil {
				return err
			}
			if f.num == 4 {
				op.SrcExtents = append(op.SrcExtents, e)
			} else {
				op.DstExtents = append(op.DstExtents, e)
			}
		case 5:
			op.SrcLength, err = f.varint("src_length")
		case 7:
			op.DstLength, err = f.varint("dst_length")
		case 8:
			op.DataSHA256, err = f.bytes("data_sha256_hash")
		case 9:
			op.SrcSHA256, err = f.bytes("src_sha256_hash")
		}
		return err
	})
	return op, err
}

func decodePartition(b []byte, c *counts) (PartitionUpdate, error) {
	var p PartitionUpdate
	err := fields(b, func(f field) error {
		var err error
		var v uint64
		var bs []byte
		switch f.num {
		case 1:
			bs, err = f.bytes("partition_name")
			p.Name = string(bs)
		case 2:
			v, err = f.varint("run_postinstall")
			p.RunPostinstall = v != 0
		case 3:
			bs, err = f.bytes("postinstall_path")
			p.PostinstallPath = string(bs)
		case 4:
			bs, err = f.bytes("filesystem_type")
			p.FilesystemType = string(bs)
		case 6, 7:
			if bs, err = f.bytes("partition_info"); err != nil {
				return err
			}
			pi, err := decodeInfo(bs)
			if err != nil {
				return err
			}
			if f.num == 6 {
				p.OldInfo = pi
			} else {
				p.NewInfo = pi
			}
		case 8:
			if bs, err = f.bytes("operations"); err != nil {
				return err
			}
			if c.ops++; c.ops > maxOps {
				return fmt.Errorf("more than %d operations", maxOps)
			}
			op, err := decodeOp(bs, c)
			if err != nil {
				return fmt.Errorf("operation %d: %w", len(p.Operations), err)
			}
			p.Operations = append(p.Operations, op)
		case 17:
			bs, err = f.bytes("version")
			p.Version = string(bs)
		case 18:
			_, err = f.bytes("merge_operations")
			p.MergeOps++
		case 19:
			p.EstimateCOWSize, err = f.varint("estimate_cow_size")
		}
		return err
	})
	return p, err
}

func decodeDynamic(b []byte) (*DynamicPartitionMetadata, error) {
	d := &DynamicPartitionMetadata{}
	err := fields(b, func(f field) error {
		var err error
		var v uint64
		var bs []byte
		switch f.num {
		case 1:
			if bs, err = f.bytes("groups"); err != nil {
				return err
			}
			if len(d.Groups) >= 1<<16 {
				return errors.New("too many dynamic partition groups")
			}
			var g DynamicPartitionGroup
			err = fields(bs, func(f field) error {
				var err error
				var bs []byte
				switch f.num {
				case 1:
					bs, err = f.bytes("group.name")
					g.Name = string(bs)
				case 2:
					g.Size, err = f.varint("group.size")
				case 3:
					bs, err = f.bytes("group.partition_names")
					g.Partitions = append(g.Partitions, string(bs))
				}
				return err
			})
			d.Groups = append(d.Groups, g)
		case 2:
			v, err = f.varint("snapshot_enabled")
			d.SnapshotEnabled = v != 0
		case 3:
			v, err = f.varint("vabc_enabled")
			d.VABCEnabled = v != 0
		case 4:
			bs, err = f.bytes("vabc_compression_param")
			d.VABCCompressionParam = string(bs)
		case 5:
			v, err = f.varint("cow_version")
			d.COWVersion = uint32(v)
		}
		return err
	})
	return d, err
}

// DecodeManifest parses a serialized DeltaArchiveManifest. Unknown fields are skipped.
func DecodeManifest(b []byte) (*Manifest, error) {
	m := &Manifest{BlockSize: 4096}
	var c counts
	err := fields(b, func(f field) error {
		var err error
		var v uint64
		var bs []byte
		switch f.num {
		case 3:
			v, err = f.varint("block_size")
			m.BlockSize = uint32(v)
			if v > 1<<31 {
				return fmt.Errorf("block_size %d out of range", v)
			}
		case 4:
			m.SignaturesOffset, err = f.varint("signatures_offset")
			m.HasSignatures = true
		case 5:
			m.SignaturesSize, err = f.varint("signatures_size")
			m.HasSignatures = true
		case 12:
			v, err = f.varint("minor_version")
			m.MinorVersion = uint32(v)
		case 13:
			if bs, err = f.bytes("partitions"); err != nil {
				return err
			}
			if len(m.Partitions) >= 1<<12 {
				return errors.New("too many partitions")
			}
			p, err := decodePartition(bs, &c)
			if err != nil {
				return fmt.Errorf("partition %d: %w", len(m.Partitions), err)
			}
			m.Partitions = append(m.Partitions, p)
		case 14:
			v, err = f.varint("max_timestamp")
			m.MaxTimestamp = int64(v)
		case 15:
			if bs, err = f.bytes("dynamic_partition_metadata"); err != nil {
				return err
			}
			m.Dynamic, err = decodeDynamic(bs)
		case 16:
			v, err = f.varint("partial_update")
			m.PartialUpdate = v != 0
		case 18:
			bs, err = f.bytes("security_patch_level")
			m.SecurityPatchLevel = string(bs)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Encoding (for the writer).

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendExtents(b []byte, num protowire.Number, es []Extent) []byte {
	for _, e := range es {
		var x []byte
		x = appendVarint(x, 1, e.StartBlock)
		x = appendVarint(x, 2, e.NumBlocks)
		b = appendBytes(b, num, x)
	}
	return b
}

func appendInfo(b []byte, num protowire.Number, pi *PartitionInfo) []byte {
	if pi == nil {
		return b
	}
	var x []byte
	x = appendVarint(x, 1, pi.Size)
	x = appendBytes(x, 2, pi.Hash)
	return appendBytes(b, num, x)
}

func (op *Operation) appendTo(b []byte) []byte {
	b = appendVarint(b, 1, uint64(op.Type))
	if op.HasData {
		b = appendVarint(b, 2, op.DataOffset)
		b = appendVarint(b, 3, op.DataLength)
	}
	b = appendExtents(b, 4, op.SrcExtents)
	if op.SrcLength != 0 {
		b = appendVarint(b, 5, op.SrcLength)
	}
	b = appendExtents(b, 6, op.DstExtents)
	if op.DstLength != 0 {
		b = appendVarint(b, 7, op.DstLength)
	}
	if op.DataSHA256 != nil {
		b = appendBytes(b, 8, op.DataSHA256)
	}
	if op.SrcSHA256 != nil {
		b = appendBytes(b, 9, op.SrcSHA256)
	}
	return b
}

// Encode serializes m as a DeltaArchiveManifest.
func (m *Manifest) Encode() []byte {
	var b []byte
	b = appendVarint(b, 3, uint64(m.BlockSize))
	if m.HasSignatures {
		b = appendVarint(b, 4, m.SignaturesOffset)
		b = appendVarint(b, 5, m.SignaturesSize)
	}
	b = appendVarint(b, 12, uint64(m.MinorVersion))
	for i := range m.Partitions {
		p := &m.Partitions[i]
		var x []byte
		x = appendBytes(x, 1, []byte(p.Name))
		if p.FilesystemType != "" {
			x = appendBytes(x, 4, []byte(p.FilesystemType))
		}
		x = appendInfo(x, 6, p.OldInfo)
		x = appendInfo(x, 7, p.NewInfo)
		for j := range p.Operations {
			x = appendBytes(x, 8, p.Operations[j].appendTo(nil))
		}
		if p.Version != "" {
			x = appendBytes(x, 17, []byte(p.Version))
		}
		b = appendBytes(b, 13, x)
	}
	if m.MaxTimestamp != 0 {
		b = appendVarint(b, 14, uint64(m.MaxTimestamp))
	}
	if d := m.Dynamic; d != nil {
		var x []byte
		for _, g := range d.Groups {
			var y []byte
			y = appendBytes(y, 1, []byte(g.Name))
			y = appendVarint(y, 2, g.Size)
			for _, n := range g.Partitions {
				y = appendBytes(y, 3, []byte(n))
			}
			x = appendBytes(x, 1, y)
		}
		if d.SnapshotEnabled {
			x = appendVarint(x, 2, 1)
		}
		if d.VABCEnabled {
			x = appendVarint(x, 3, 1)
		}
		if d.VABCCompressionParam != "" {
			x = appendBytes(x, 4, []byte(d.VABCCompressionParam))
		}
		if d.COWVersion != 0 {
			x = appendVarint(x, 5, uint64(d.COWVersion))
		}
		b = appendBytes(b, 15, x)
	}
	if m.PartialUpdate {
		b = appendVarint(b, 16, 1)
	}
	if m.SecurityPatchLevel != "" {
		b = appendBytes(b, 18, []byte(m.SecurityPatchLevel))
	}
	return b
}
