package avb

import (
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Info is the JSON-able description of a vbmeta image or footer (snake_case keys, avbtool names).
type Info struct {
	Footer                  *FooterInfo      `json:"footer,omitempty"`
	ImageSize               int64            `json:"image_size,omitempty"`
	MinimumLibavbVersion    string           `json:"minimum_libavb_version"`
	HeaderBlockSize         int              `json:"header_block_size"`
	AuthenticationBlockSize uint64           `json:"authentication_block_size"`
	AuxiliaryBlockSize      uint64           `json:"auxiliary_block_size"`
	Algorithm               string           `json:"algorithm"`
	PublicKeySHA1           string           `json:"public_key_sha1,omitempty"`
	PublicKeySHA256         string           `json:"public_key_sha256,omitempty"`
	PublicKeyMetadataSize   uint64           `json:"public_key_metadata_size,omitempty"`
	RollbackIndex           uint64           `json:"rollback_index"`
	Flags                   uint32           `json:"flags"`
	HashtreeDisabled        bool             `json:"hashtree_disabled"`
	VerificationDisabled    bool             `json:"verification_disabled"`
	RollbackIndexLocation   uint32           `json:"rollback_index_location"`
	ReleaseString           string           `json:"release_string"`
	Descriptors             []DescriptorInfo `json:"descriptors"`
}

// FooterInfo is the footer part of Info.
type FooterInfo struct {
	Version           string `json:"version"`
	OriginalImageSize uint64 `json:"original_image_size"`
	VBMetaOffset      uint64 `json:"vbmeta_offset"`
	VBMetaSize        uint64 `json:"vbmeta_size"`
}

// DescriptorInfo is one descriptor; Type is property, hashtree, hash, kernel_cmdline, chain_partition
// or unknown, and only that type's fields are set.
type DescriptorInfo struct {
	Type string `json:"type"`
	// property
	Key       string `json:"key,omitempty"`
	Value     string `json:"value,omitempty"`
	ValueHex  string `json:"value_hex,omitempty"` // when the value is not printable UTF-8
	ValueSize *int   `json:"value_size,omitempty"`
	// hashtree and hash
	DMVerityVersion *uint32 `json:"dm_verity_version,omitempty"`
	ImageSize       *uint64 `json:"image_size,omitempty"`
	TreeOffset      *uint64 `json:"tree_offset,omitempty"`
	TreeSize        *uint64 `json:"tree_size,omitempty"`
	DataBlockSize   *uint32 `json:"data_block_size,omitempty"`
	HashBlockSize   *uint32 `json:"hash_block_size,omitempty"`
	FECNumRoots     *uint32 `json:"fec_num_roots,omitempty"`
	FECOffset       *uint64 `json:"fec_offset,omitempty"`
	FECSize         *uint64 `json:"fec_size,omitempty"`
	HashAlgorithm   string  `json:"hash_algorithm,omitempty"`
	PartitionName   string  `json:"partition_name,omitempty"`
	Salt            *string `json:"salt,omitempty"`
	RootDigest      *string `json:"root_digest,omitempty"`
	Digest          *string `json:"digest,omitempty"`
	// kernel cmdline
	KernelCmdline *string `json:"kernel_cmdline,omitempty"`
	// chain partition
	RollbackIndexLocation *uint32 `json:"rollback_index_location,omitempty"`
	PublicKeySHA1         string  `json:"public_key_sha1,omitempty"`
	PublicKeySHA256       string  `json:"public_key_sha256,omitempty"`
	// unknown
	Tag     *uint64 `json:"tag,omitempty"`
	Size    *int    `json:"size,omitempty"`
	DataHex string  `json:"data_hex,omitempty"`

	Flags *uint32 `json:"flags,omitempty"`
}

func ptr[T any](v T) *T { return &v }

func hexOf(b []byte) *string { return ptr(hex.EncodeToString(b)) }

func digestHex(h crypto.Hash, b []byte) string {
	if h == crypto.SHA1 {
		s := sha1.Sum(b)
		return hex.EncodeToString(s[:])
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// DescribeDescriptor returns the Info form of one descriptor.
func DescribeDescriptor(d Descriptor) DescriptorInfo {
	switch d := d.(type) {
	case *PropertyDescriptor:
		i := DescriptorInfo{Type: "property", Key: d.Key, ValueSize: ptr(len(d.Value))}
		if utf8.Valid(d.Value) && !strings.ContainsRune(string(d.Value), 0) {
			i.Value = string(d.Value)
		} else {
			i.ValueHex = hex.EncodeToString(d.Value)
		}
		return i
	case *HashtreeDescriptor:
		return DescriptorInfo{Type: "hashtree", DMVerityVersion: ptr(d.DMVerityVersion), ImageSize: ptr(d.ImageSize),
			TreeOffset: ptr(d.TreeOffset), TreeSize: ptr(d.TreeSize), DataBlockSize: ptr(d.DataBlockSize),
			HashBlockSize: ptr(d.HashBlockSize), FECNumRoots: ptr(d.FECNumRoots), FECOffset: ptr(d.FECOffset),
			FECSize: ptr(d.FECSize), HashAlgorithm: d.HashAlgorithm, PartitionName: d.PartitionName,
			Salt: hexOf(d.Salt), RootDigest: hexOf(d.RootDigest), Flags: ptr(d.Flags)}
	case *HashDescriptor:
		return DescriptorInfo{Type: "hash", ImageSize: ptr(d.ImageSize), HashAlgorithm: d.HashAlgorithm,
			PartitionName: d.PartitionName, Salt: hexOf(d.Salt), Digest: hexOf(d.Digest), Flags: ptr(d.Flags)}
	case *KernelCmdlineDescriptor:
		return DescriptorInfo{Type: "kernel_cmdline", KernelCmdline: ptr(d.Cmdline), Flags: ptr(d.Flags)}
	case *ChainPartitionDescriptor:
		return DescriptorInfo{Type: "chain_partition", PartitionName: d.PartitionName,
			RollbackIndexLocation: ptr(d.RollbackIndexLocation), PublicKeySHA1: digestHex(crypto.SHA1, d.PublicKey),
			PublicKeySHA256: digestHex(crypto.SHA256, d.PublicKey), Flags: ptr(d.Flags)}
	case *UnknownDescriptor:
		i := DescriptorInfo{Type: "unknown", Tag: ptr(d.TagValue), Size: ptr(len(d.Data))}
		if len(d.Data) <= 256 {
			i.DataHex = hex.EncodeToString(d.Data)
		}
		return i
	}
	return DescriptorInfo{Type: "unknown"}
}

// Info describes img for `romforge inspect`.
func (img *Image) Info() *Info {
	i := img.VBMeta.Info()
	if f := img.Footer; f != nil {
		i.Footer = &FooterInfo{Version: fmt.Sprintf("%d.%d", f.VersionMajor, f.VersionMinor),
			OriginalImageSize: f.OriginalImageSize, VBMetaOffset: f.VBMetaOffset, VBMetaSize: f.VBMetaSize}
		i.ImageSize = img.Size
	}
	return i
}

// Info describes the vbmeta struct alone.
func (v *VBMeta) Info() *Info {
	i := &Info{
		MinimumLibavbVersion:    fmt.Sprintf("%d.%d", v.RequiredLibavbMajor, v.RequiredLibavbMinor),
		HeaderBlockSize:         HeaderSize,
		AuthenticationBlockSize: v.AuthBlockSize,
		AuxiliaryBlockSize:      v.AuxBlockSize,
		Algorithm:               v.Algorithm.String(),
		PublicKeySHA1:           v.PublicKeySHA1(),
		PublicKeySHA256:         v.PublicKeySHA256(),
		PublicKeyMetadataSize:   v.PublicKeyMetaSize,
		RollbackIndex:           v.RollbackIndex,
		Flags:                   v.Flags,
		HashtreeDisabled:        v.Flags&FlagHashtreeDisabled != 0,
		VerificationDisabled:    v.Flags&FlagVerificationDisabled != 0,
		RollbackIndexLocation:   v.RollbackIndexLocation,
		ReleaseString:           v.ReleaseString,
		Descriptors:             []DescriptorInfo{},
	}
	for _, d := range v.Descriptors {
		i.Descriptors = append(i.Descriptors, DescribeDescriptor(d))
	}
	return i
}

// WriteText prints img the way `avbtool info_image` does (same lines, same spacing), so the two can be
// compared directly.
func (img *Image) WriteText(w io.Writer) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	if f := img.Footer; f != nil {
		p("Footer version:           %d.%d", f.VersionMajor, f.VersionMinor)
		p("Image size:               %d bytes", img.Size)
		p("Original image size:      %d bytes", f.OriginalImageSize)
		p("VBMeta offset:            %d", f.VBMetaOffset)
		p("VBMeta size:              %d bytes", f.VBMetaSize)
		p("--")
	}
	v := img.VBMeta
	p("Minimum libavb version:   %d.%d", v.RequiredLibavbMajor, v.RequiredLibavbMinor)
	p("Header Block:             %d bytes", HeaderSize)
	p("Authentication Block:     %d bytes", v.AuthBlockSize)
	p("Auxiliary Block:          %d bytes", v.AuxBlockSize)
	if len(v.PublicKey) > 0 {
		p("Public key (sha1):        %s", v.PublicKeySHA1())
	}
	p("Algorithm:                %s", v.Algorithm)
	p("Rollback Index:           %d", v.RollbackIndex)
	p("Flags:                    %d", v.Flags)
	p("Rollback Index Location:  %d", v.RollbackIndexLocation)
	p("Release String:           '%s'", v.ReleaseString)
	p("Descriptors:")
	if len(v.Descriptors) == 0 {
		p("    (none)")
	}
	for _, d := range v.Descriptors {
		switch d := d.(type) {
		case *PropertyDescriptor:
			if len(d.Value) < 256 {
				p("    Prop: %s -> %s", d.Key, pyBytesRepr(d.Value))
			} else {
				p("    Prop: %s -> (%d bytes)", d.Key, len(d.Value))
			}
		case *HashtreeDescriptor:
			p("    Hashtree descriptor:")
			p("      Version of dm-verity:  %d", d.DMVerityVersion)
			p("      Image Size:            %d bytes", d.ImageSize)
			p("      Tree Offset:           %d", d.TreeOffset)
			p("      Tree Size:             %d bytes", d.TreeSize)
			p("      Data Block Size:       %d bytes", d.DataBlockSize)
			p("      Hash Block Size:       %d bytes", d.HashBlockSize)
			p("      FEC num roots:         %d", d.FECNumRoots)
			p("      FEC offset:            %d", d.FECOffset)
			p("      FEC size:              %d bytes", d.FECSize)
			p("      Hash Algorithm:        %s", d.HashAlgorithm)
			p("      Partition Name:        %s", d.PartitionName)
			p("      Salt:                  %x", d.Salt)
			p("      Root Digest:           %x", d.RootDigest)
			p("      Flags:                 %d", d.Flags)
		case *HashDescriptor:
			p("    Hash descriptor:")
			p("      Image Size:            %d bytes", d.ImageSize)
			p("      Hash Algorithm:        %s", d.HashAlgorithm)
			p("      Partition Name:        %s", d.PartitionName)
			p("      Salt:                  %x", d.Salt)
			p("      Digest:                %x", d.Digest)
			p("      Flags:                 %d", d.Flags)
		case *KernelCmdlineDescriptor:
			p("    Kernel Cmdline descriptor:")
			p("      Flags:                 %d", d.Flags)
			p("      Kernel Cmdline:        '%s'", d.Cmdline)
		case *ChainPartitionDescriptor:
			p("    Chain Partition descriptor:")
			p("      Partition Name:          %s", d.PartitionName)
			p("      Rollback Index Location: %d", d.RollbackIndexLocation)
			p("      Public key (sha1):       %s", digestHex(crypto.SHA1, d.PublicKey))
			p("      Flags:                   %d", d.Flags)
		case *UnknownDescriptor:
			p("    Unknown descriptor:")
			p("      Tag:  %d", d.TagValue)
			p("      Data: %d bytes", len(d.Data))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// pyBytesRepr formats b like Python's repr(bytes) as avbtool prints properties (leading b dropped for '…').
func pyBytesRepr(b []byte) string {
	q := byte('\'')
	if strings.IndexByte(string(b), '\'') >= 0 && strings.IndexByte(string(b), '"') < 0 {
		q = '"'
	}
	var s strings.Builder
	if q == '"' {
		s.WriteByte('b') // avbtool strips the b only from b'…'
	}
	s.WriteByte(q)
	for _, c := range b {
		switch {
		case c == q || c == '\\':
			s.WriteByte('\\')
			s.WriteByte(c)
		case c == '\t':
			s.WriteString(`\t`)
		case c == '\n':
			s.WriteString(`\n`)
		case c == '\r':
			s.WriteString(`\r`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&s, `\x%02x`, c)
		default:
			s.WriteByte(c)
		}
	}
	s.WriteByte(q)
	return s.String()
}

// CalculateVBMetaDigest is `avbtool calculate_vbmeta_digest`: the digest of the top-level vbmeta struct
// followed by the vbmeta struct of every chained partition (in descriptor order), as the bootloader
// reports it in androidboot.vbmeta.digest. chained returns the vbmeta of a chained partition.
func CalculateVBMetaDigest(top *VBMeta, hash crypto.Hash, chained func(name string) (*VBMeta, error)) ([]byte, error) {
	if !hash.Available() {
		return nil, invalid("hash %v is not available", hash)
	}
	h := hash.New()
	h.Write(top.Raw)
	for _, d := range top.Descriptors {
		if c, ok := d.(*ChainPartitionDescriptor); ok {
			v, err := chained(c.PartitionName)
			if err != nil {
				return nil, fmt.Errorf("avb: chained partition %s: %w", c.PartitionName, err)
			}
			h.Write(v.Raw)
		}
	}
	return h.Sum(nil), nil
}
