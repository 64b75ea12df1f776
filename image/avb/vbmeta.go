package avb

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/romforge/romforge/internal/safeio"
)

// Sizes and magics of the fixed structures.
const (
	HeaderSize = 256 // AvbVBMetaImageHeader
	FooterSize = 64  // AvbFooter

	vbmetaMagic = "AVB0"
	footerMagic = "AVBf"

	// FlagHashtreeDisabled (AVB_VBMETA_IMAGE_FLAGS_HASHTREE_DISABLED) turns dm-verity off.
	FlagHashtreeDisabled uint32 = 1
	// FlagVerificationDisabled (AVB_VBMETA_IMAGE_FLAGS_VERIFICATION_DISABLED) skips descriptor checks.
	FlagVerificationDisabled uint32 = 2

	flagsOffset = 120 // big-endian u32 flags word in the header

	// MaxVBMetaSize bounds what we read as one vbmeta struct (avbtool reserves 64 KiB in footers).
	MaxVBMetaSize = 64 << 10
	// libavb's version: the highest required minor version we accept.
	libavbMajor      = 1
	libavbMinorLimit = 3

	releaseStringSize = 48
	// DefaultReleaseString is what avbtool 1.3.0 writes; keeping it makes our images byte-identical to
	// avbtool's and tells readers which libavb format version they follow.
	DefaultReleaseString = "avbtool 1.3.0"
)

// Header is AvbVBMetaImageHeader (all fields big-endian on disk).
type Header struct {
	RequiredLibavbMajor   uint32
	RequiredLibavbMinor   uint32
	AuthBlockSize         uint64
	AuxBlockSize          uint64
	Algorithm             Algorithm
	HashOffset            uint64
	HashSize              uint64
	SignatureOffset       uint64
	SignatureSize         uint64
	PublicKeyOffset       uint64
	PublicKeySize         uint64
	PublicKeyMetaOffset   uint64
	PublicKeyMetaSize     uint64
	DescriptorsOffset     uint64
	DescriptorsSize       uint64
	RollbackIndex         uint64
	Flags                 uint32
	RollbackIndexLocation uint32
	ReleaseString         string
}

// VBMeta is a parsed vbmeta struct. Raw holds exactly header + authentication + auxiliary block; the
// byte-slice fields alias it.
type VBMeta struct {
	Header
	Raw               []byte
	Hash              []byte
	Signature         []byte
	PublicKey         []byte // AvbRSAPublicKeyHeader blob, empty when unsigned
	PublicKeyMetadata []byte
	Descriptors       []Descriptor
}

func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
func be64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// parseHeader decodes the 256-byte header and checks what needs no other data.
func parseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, formatErr(0, "vbmeta header truncated: %d of %d bytes", len(b), HeaderSize)
	}
	if string(b[:4]) != vbmetaMagic {
		return h, formatErr(0, "not a vbmeta image: magic %q, want %q", b[:4], vbmetaMagic)
	}
	h.RequiredLibavbMajor = be32(b[4:])
	h.RequiredLibavbMinor = be32(b[8:])
	h.AuthBlockSize = be64(b[12:])
	h.AuxBlockSize = be64(b[20:])
	h.Algorithm = Algorithm(be32(b[28:]))
	h.HashOffset, h.HashSize = be64(b[32:]), be64(b[40:])
	h.SignatureOffset, h.SignatureSize = be64(b[48:]), be64(b[56:])
	h.PublicKeyOffset, h.PublicKeySize = be64(b[64:]), be64(b[72:])
	h.PublicKeyMetaOffset, h.PublicKeyMetaSize = be64(b[80:]), be64(b[88:])
	h.DescriptorsOffset, h.DescriptorsSize = be64(b[96:]), be64(b[104:])
	h.RollbackIndex = be64(b[112:])
	h.Flags = be32(b[120:])
	h.RollbackIndexLocation = be32(b[124:])
	rs := b[128 : 128+releaseStringSize]
	if i := bytes.IndexByte(rs, 0); i >= 0 {
		rs = rs[:i]
	} else {
		return h, formatErr(128, "release string is not NUL-terminated")
	}
	h.ReleaseString = string(rs)

	if h.RequiredLibavbMajor != libavbMajor || h.RequiredLibavbMinor > libavbMinorLimit {
		return h, formatErr(4, "requires libavb %d.%d; this reader supports 1.0 to 1.%d", h.RequiredLibavbMajor, h.RequiredLibavbMinor, libavbMinorLimit)
	}
	if h.AuthBlockSize%64 != 0 || h.AuxBlockSize%64 != 0 {
		return h, formatErr(12, "block sizes %d and %d are not multiples of 64", h.AuthBlockSize, h.AuxBlockSize)
	}
	if h.AuthBlockSize > MaxVBMetaSize || h.AuxBlockSize > MaxVBMetaSize {
		return h, formatErr(12, "block sizes %d and %d exceed the %d-byte vbmeta limit", h.AuthBlockSize, h.AuxBlockSize, MaxVBMetaSize)
	}
	if !h.Algorithm.Known() {
		return h, formatErr(28, "unknown algorithm type %d", uint32(h.Algorithm))
	}
	type rng struct {
		name      string
		at        int64
		off, n    uint64
		blockSize uint64
	}
	for _, r := range []rng{
		{"hash", 32, h.HashOffset, h.HashSize, h.AuthBlockSize},
		{"signature", 48, h.SignatureOffset, h.SignatureSize, h.AuthBlockSize},
		{"public key", 64, h.PublicKeyOffset, h.PublicKeySize, h.AuxBlockSize},
		{"public key metadata", 80, h.PublicKeyMetaOffset, h.PublicKeyMetaSize, h.AuxBlockSize},
		{"descriptors", 96, h.DescriptorsOffset, h.DescriptorsSize, h.AuxBlockSize},
	} {
		if r.off > r.blockSize || r.n > r.blockSize-r.off {
			return h, formatErr(r.at, "%s range [%d, +%d) overruns its %d-byte block", r.name, r.off, r.n, r.blockSize)
		}
	}
	if a := h.Algorithm; a != AlgorithmNone {
		if h.HashSize != uint64(a.HashSize()) {
			return h, formatErr(40, "hash size %d does not match %s", h.HashSize, a)
		}
		if h.SignatureSize != uint64(a.SignatureSize()) {
			return h, formatErr(56, "signature size %d does not match %s", h.SignatureSize, a)
		}
	}
	return h, nil
}

// Size is the length of the vbmeta struct: header, authentication and auxiliary block.
func (h *Header) Size() int64 { return HeaderSize + int64(h.AuthBlockSize) + int64(h.AuxBlockSize) }

// Parse parses a vbmeta struct at the start of b (trailing padding is allowed).
func Parse(b []byte) (*VBMeta, error) {
	h, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	total := h.Size()
	if int64(len(b)) < total {
		return nil, formatErr(12, "vbmeta is %d bytes but its header describes %d", len(b), total)
	}
	v := &VBMeta{Header: h, Raw: b[:total:total]}
	auth := v.Raw[HeaderSize : HeaderSize+h.AuthBlockSize]
	aux := v.Raw[HeaderSize+h.AuthBlockSize:]
	v.Hash = auth[h.HashOffset : h.HashOffset+h.HashSize]
	v.Signature = auth[h.SignatureOffset : h.SignatureOffset+h.SignatureSize]
	v.PublicKey = aux[h.PublicKeyOffset : h.PublicKeyOffset+h.PublicKeySize]
	v.PublicKeyMetadata = aux[h.PublicKeyMetaOffset : h.PublicKeyMetaOffset+h.PublicKeyMetaSize]
	base := int64(HeaderSize + h.AuthBlockSize + h.DescriptorsOffset)
	v.Descriptors, err = parseDescriptors(aux[h.DescriptorsOffset:h.DescriptorsOffset+h.DescriptorsSize], base)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// ReadVBMeta reads and parses the vbmeta struct at off in r, reading no more than the header claims
// (and never more than MaxVBMetaSize).
func ReadVBMeta(r io.ReaderAt, off int64) (*VBMeta, error) {
	hb := make([]byte, HeaderSize)
	if _, err := r.ReadAt(hb, off); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, formatErr(off, "vbmeta header truncated")
		}
		return nil, fmt.Errorf("avb: reading vbmeta header: %w", err)
	}
	h, err := parseHeader(hb)
	if err != nil {
		return nil, err
	}
	b, err := safeio.ReadDataAt(r, uint64(h.Size()), off)
	if err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, formatErr(off, "vbmeta struct of %d bytes is cut short by the end of the image", h.Size())
		}
		return nil, fmt.Errorf("avb: reading vbmeta: %w", err)
	}
	return Parse(b)
}

// PublicKeySHA1 is the hex SHA-1 of the embedded public key blob (what avbtool prints), "" if none.
func (v *VBMeta) PublicKeySHA1() string {
	if len(v.PublicKey) == 0 {
		return ""
	}
	s := sha1.Sum(v.PublicKey)
	return hex.EncodeToString(s[:])
}

// PublicKeySHA256 is the hex SHA-256 of the embedded public key blob, "" if none.
func (v *VBMeta) PublicKeySHA256() string {
	if len(v.PublicKey) == 0 {
		return ""
	}
	s := sha256.Sum256(v.PublicKey)
	return hex.EncodeToString(s[:])
}

// encodeHeader writes h in its 256-byte on-disk form.
func encodeHeader(h *Header) ([]byte, error) {
	if len(h.ReleaseString) >= releaseStringSize || !utf8.ValidString(h.ReleaseString) || bytes.IndexByte([]byte(h.ReleaseString), 0) >= 0 {
		return nil, invalid("release string %q must be UTF-8 without NUL and at most %d bytes", h.ReleaseString, releaseStringSize-1)
	}
	b := make([]byte, HeaderSize)
	copy(b, vbmetaMagic)
	p := binary.BigEndian
	p.PutUint32(b[4:], h.RequiredLibavbMajor)
	p.PutUint32(b[8:], h.RequiredLibavbMinor)
	p.PutUint64(b[12:], h.AuthBlockSize)
	p.PutUint64(b[20:], h.AuxBlockSize)
	p.PutUint32(b[28:], uint32(h.Algorithm))
	for i, v := range []uint64{h.HashOffset, h.HashSize, h.SignatureOffset, h.SignatureSize, h.PublicKeyOffset,
		h.PublicKeySize, h.PublicKeyMetaOffset, h.PublicKeyMetaSize, h.DescriptorsOffset, h.DescriptorsSize, h.RollbackIndex} {
		p.PutUint64(b[32+8*i:], v)
	}
	p.PutUint32(b[120:], h.Flags)
	p.PutUint32(b[124:], h.RollbackIndexLocation)
	copy(b[128:], h.ReleaseString)
	return b, nil
}

// SetFlags rewrites the flags word of the vbmeta struct at the start of vbmeta and nothing else, which
// is exactly what `fastboot flash vbmeta --disable-verity --disable-verification` sends (the client ORs
// FlagHashtreeDisabled|FlagVerificationDisabled into the existing word). The signature is not
// recomputed: bootloaders honour these flags only when unlocked.
func SetFlags(vbmeta []byte, flags uint32) error {
	if _, err := parseHeader(vbmeta); err != nil {
		return err
	}
	binary.BigEndian.PutUint32(vbmeta[flagsOffset:], flags)
	return nil
}
