package avb

import (
	"bytes"
	"encoding/binary"

	"github.com/romforge/romforge/internal/safeio"
)

// Descriptor tags (avb_descriptor.h).
const (
	TagProperty       uint64 = 0
	TagHashtree       uint64 = 1
	TagHash           uint64 = 2
	TagKernelCmdline  uint64 = 3
	TagChainPartition uint64 = 4
)

// Flags of hash and hashtree descriptors.
const (
	DescriptorFlagDoNotUseAB      uint32 = 1 << 0 // AVB_HASH(TREE)_DESCRIPTOR_FLAGS_DO_NOT_USE_AB
	HashtreeFlagCheckAtMostOnce   uint32 = 1 << 1
	ChainFlagDoNotUseAB           uint32 = 1 << 0
	CmdlineFlagIfHashtreeEnabled  uint32 = 1 << 0
	CmdlineFlagIfHashtreeDisabled uint32 = 1 << 1
)

// Descriptor is one entry of the auxiliary block's descriptor list.
type Descriptor interface {
	// Tag is the AvbDescriptorTag.
	Tag() uint64
	// body encodes what follows the 16-byte descriptor header, before padding to 8 bytes.
	body() []byte
}

// PropertyDescriptor is AvbPropertyDescriptor: a key and a value (NUL-terminated on disk).
type PropertyDescriptor struct {
	Key   string
	Value []byte
}

// HashtreeDescriptor is AvbHashtreeDescriptor: a dm-verity tree over a partition.
type HashtreeDescriptor struct {
	DMVerityVersion uint32
	ImageSize       uint64
	TreeOffset      uint64
	TreeSize        uint64
	DataBlockSize   uint32
	HashBlockSize   uint32
	FECNumRoots     uint32
	FECOffset       uint64
	FECSize         uint64
	HashAlgorithm   string
	PartitionName   string
	Salt            []byte
	RootDigest      []byte
	Flags           uint32
}

// HashDescriptor is AvbHashDescriptor: a digest of salt followed by the whole partition content.
type HashDescriptor struct {
	ImageSize     uint64
	HashAlgorithm string
	PartitionName string
	Salt          []byte
	Digest        []byte
	Flags         uint32
}

// KernelCmdlineDescriptor is AvbKernelCmdlineDescriptor.
type KernelCmdlineDescriptor struct {
	Flags   uint32
	Cmdline string
}

// ChainPartitionDescriptor is AvbChainPartitionDescriptor: another partition's vbmeta signed with PublicKey.
type ChainPartitionDescriptor struct {
	RollbackIndexLocation uint32
	PartitionName         string
	PublicKey             []byte
	Flags                 uint32
}

// UnknownDescriptor keeps a descriptor with a tag this package does not know, as raw bytes.
type UnknownDescriptor struct {
	TagValue uint64
	Data     []byte // the num_bytes_following bytes
}

func (*PropertyDescriptor) Tag() uint64       { return TagProperty }
func (*HashtreeDescriptor) Tag() uint64       { return TagHashtree }
func (*HashDescriptor) Tag() uint64           { return TagHash }
func (*KernelCmdlineDescriptor) Tag() uint64  { return TagKernelCmdline }
func (*ChainPartitionDescriptor) Tag() uint64 { return TagChainPartition }
func (d *UnknownDescriptor) Tag() uint64      { return d.TagValue }

var bep = binary.BigEndian

func (d *PropertyDescriptor) body() []byte {
	b := make([]byte, 16, 16+len(d.Key)+len(d.Value)+2)
	bep.PutUint64(b[0:], uint64(len(d.Key)))
	bep.PutUint64(b[8:], uint64(len(d.Value)))
	b = append(b, d.Key...)
	b = append(b, 0)
	b = append(b, d.Value...)
	return append(b, 0)
}

func (d *HashtreeDescriptor) body() []byte {
	b := make([]byte, 164)
	bep.PutUint32(b[0:], d.DMVerityVersion)
	bep.PutUint64(b[4:], d.ImageSize)
	bep.PutUint64(b[12:], d.TreeOffset)
	bep.PutUint64(b[20:], d.TreeSize)
	bep.PutUint32(b[28:], d.DataBlockSize)
	bep.PutUint32(b[32:], d.HashBlockSize)
	bep.PutUint32(b[36:], d.FECNumRoots)
	bep.PutUint64(b[40:], d.FECOffset)
	bep.PutUint64(b[48:], d.FECSize)
	copy(b[56:88], d.HashAlgorithm)
	bep.PutUint32(b[88:], uint32(len(d.PartitionName)))
	bep.PutUint32(b[92:], uint32(len(d.Salt)))
	bep.PutUint32(b[96:], uint32(len(d.RootDigest)))
	bep.PutUint32(b[100:], d.Flags)
	b = append(b, d.PartitionName...)
	b = append(b, d.Salt...)
	return append(b, d.RootDigest...)
}

func (d *HashDescriptor) body() []byte {
	b := make([]byte, 116)
	bep.PutUint64(b[0:], d.ImageSize)
	copy(b[8:40], d.HashAlgorithm)
	bep.PutUint32(b[40:], uint32(len(d.PartitionName)))
	bep.PutUint32(b[44:], uint32(len(d.Salt)))
	bep.PutUint32(b[48:], uint32(len(d.Digest)))
	bep.PutUint32(b[52:], d.Flags)
	b = append(b, d.PartitionName...)
	b = append(b, d.Salt...)
	return append(b, d.Digest...)
}

func (d *KernelCmdlineDescriptor) body() []byte {
	b := make([]byte, 8)
	bep.PutUint32(b[0:], d.Flags)
	bep.PutUint32(b[4:], uint32(len(d.Cmdline)))
	return append(b, d.Cmdline...)
}

func (d *ChainPartitionDescriptor) body() []byte {
	b := make([]byte, 76)
	bep.PutUint32(b[0:], d.RollbackIndexLocation)
	bep.PutUint32(b[4:], uint32(len(d.PartitionName)))
	bep.PutUint32(b[8:], uint32(len(d.PublicKey)))
	bep.PutUint32(b[12:], d.Flags)
	b = append(b, d.PartitionName...)
	return append(b, d.PublicKey...)
}

func (d *UnknownDescriptor) body() []byte { return d.Data }

// EncodeDescriptor returns d in its on-disk form: tag, num_bytes_following, body, zero padding to 8 bytes
// (the same bytes avbtool writes).
func EncodeDescriptor(d Descriptor) []byte {
	body := d.body()
	n := (len(body) + 7) &^ 7
	out := make([]byte, 16+n)
	bep.PutUint64(out[0:], d.Tag())
	bep.PutUint64(out[8:], uint64(n))
	copy(out[16:], body)
	return out
}

// fixedBody is the size of each known descriptor's fixed part after the 16-byte header.
var fixedBody = map[uint64]uint64{
	TagProperty:       16,
	TagHashtree:       164,
	TagHash:           116,
	TagKernelCmdline:  8,
	TagChainPartition: 76,
}

// parseDescriptors walks the descriptor area; base is its offset in the vbmeta struct, for errors.
func parseDescriptors(b []byte, base int64) ([]Descriptor, error) {
	var out []Descriptor
	for off := uint64(0); off < uint64(len(b)); {
		at := base + int64(off)
		if uint64(len(b))-off < 16 {
			return nil, formatErr(at, "descriptor header truncated: %d bytes left", uint64(len(b))-off)
		}
		tag, n := bep.Uint64(b[off:]), bep.Uint64(b[off+8:])
		if n%8 != 0 {
			return nil, formatErr(at+8, "descriptor size %d is not a multiple of 8", n)
		}
		if n > uint64(len(b))-off-16 {
			return nil, formatErr(at+8, "descriptor of %d bytes overruns the descriptor area (%d bytes left)", n, uint64(len(b))-off-16)
		}
		body := b[off+16 : off+16+n]
		d, err := parseDescriptor(tag, body, at)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
		off += 16 + n
	}
	return out, nil
}

// fields splits body after the fixed part into consecutive pieces of the given lengths, checking that
// they fit.
func fields(body []byte, fixed uint64, at int64, what string, lens ...uint64) ([][]byte, error) {
	rest := body[fixed:]
	var sum uint64
	for _, l := range lens {
		sum += l // each l < 2^33 (u32 or checked u64 below), so no overflow with few fields
	}
	if sum > uint64(len(rest)) {
		return nil, formatErr(at, "%s descriptor: variable fields of %d bytes overrun its %d-byte body", what, sum, len(rest))
	}
	out := make([][]byte, len(lens))
	for i, l := range lens {
		out[i] = bytes.Clone(rest[:l])
		rest = rest[l:]
	}
	return out, nil
}

func parseDescriptor(tag uint64, body []byte, at int64) (Descriptor, error) {
	fixed, known := fixedBody[tag]
	if !known {
		return &UnknownDescriptor{TagValue: tag, Data: bytes.Clone(body)}, nil
	}
	if uint64(len(body)) < fixed {
		return nil, formatErr(at, "descriptor with tag %d is %d bytes, shorter than its %d-byte fixed part", tag, len(body), fixed)
	}
	switch tag {
	case TagProperty:
		kl, vl := bep.Uint64(body[0:]), bep.Uint64(body[8:])
		if kl > 1<<32 || vl > 1<<32 {
			return nil, formatErr(at, "property descriptor: key/value sizes %d/%d overrun its body", kl, vl)
		}
		f, err := fields(body, fixed, at, "property", kl, 1, vl, 1)
		if err != nil {
			return nil, err
		}
		return &PropertyDescriptor{Key: string(f[0]), Value: f[2]}, nil
	case TagHashtree:
		d := &HashtreeDescriptor{
			DMVerityVersion: bep.Uint32(body[0:]),
			ImageSize:       bep.Uint64(body[4:]),
			TreeOffset:      bep.Uint64(body[12:]),
			TreeSize:        bep.Uint64(body[20:]),
			DataBlockSize:   bep.Uint32(body[28:]),
			HashBlockSize:   bep.Uint32(body[32:]),
			FECNumRoots:     bep.Uint32(body[36:]),
			FECOffset:       bep.Uint64(body[40:]),
			FECSize:         bep.Uint64(body[48:]),
			HashAlgorithm:   safeio.CString(body[56:88]),
			Flags:           bep.Uint32(body[100:]),
		}
		f, err := fields(body, fixed, at, "hashtree", uint64(bep.Uint32(body[88:])), uint64(bep.Uint32(body[92:])), uint64(bep.Uint32(body[96:])))
		if err != nil {
			return nil, err
		}
		d.PartitionName, d.Salt, d.RootDigest = string(f[0]), f[1], f[2]
		return d, nil
	case TagHash:
		d := &HashDescriptor{
			ImageSize:     bep.Uint64(body[0:]),
			HashAlgorithm: safeio.CString(body[8:40]),
			Flags:         bep.Uint32(body[52:]),
		}
		f, err := fields(body, fixed, at, "hash", uint64(bep.Uint32(body[40:])), uint64(bep.Uint32(body[44:])), uint64(bep.Uint32(body[48:])))
		if err != nil {
			return nil, err
		}
		d.PartitionName, d.Salt, d.Digest = string(f[0]), f[1], f[2]
		return d, nil
	case TagKernelCmdline:
		d := &KernelCmdlineDescriptor{Flags: bep.Uint32(body[0:])}
		f, err := fields(body, fixed, at, "kernel cmdline", uint64(bep.Uint32(body[4:])))
		if err != nil {
			return nil, err
		}
		d.Cmdline = string(f[0])
		return d, nil
	default: // TagChainPartition
		d := &ChainPartitionDescriptor{RollbackIndexLocation: bep.Uint32(body[0:]), Flags: bep.Uint32(body[12:])}
		f, err := fields(body, fixed, at, "chain partition", uint64(bep.Uint32(body[4:])), uint64(bep.Uint32(body[8:])))
		if err != nil {
			return nil, err
		}
		d.PartitionName, d.PublicKey = string(f[0]), f[1]
		return d, nil
	}
}

// partitionOf returns the partition a descriptor is about ("" for property, cmdline and unknown).
func partitionOf(d Descriptor) string {
	switch d := d.(type) {
	case *HashtreeDescriptor:
		return d.PartitionName
	case *HashDescriptor:
		return d.PartitionName
	case *ChainPartitionDescriptor:
		return d.PartitionName
	}
	return ""
}
