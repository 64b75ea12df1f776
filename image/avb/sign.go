package avb

import (
	"crypto/rand"
	"crypto/rsa"
	"sort"
)

// ChainPartition names a partition whose vbmeta is signed by another key (--chain_partition).
type ChainPartition struct {
	Name       string
	Location   uint32 // rollback index location, ≥ 1
	PublicKey  []byte // .avbpubkey bytes
	DoNotUseAB bool
}

// Property is a key/value property descriptor (--prop).
type Property struct {
	Key   string
	Value []byte
}

// SignOptions describe a vbmeta struct to build. The descriptor order is avbtool's: Descriptors, chain
// partitions, properties, kernel command lines, then the descriptors of Include (those naming a
// partition deduplicated by type and name, last one wins, sorted as avbtool sorts them).
type SignOptions struct {
	Algorithm             Algorithm
	Key                   *rsa.PrivateKey // required unless Algorithm is NONE
	RollbackIndex         uint64
	RollbackIndexLocation uint32
	Flags                 uint32
	Descriptors           []Descriptor
	Chains                []ChainPartition
	Properties            []Property
	KernelCmdlines        []string
	Include               []*VBMeta // --include_descriptors_from_image
	ReleaseString         string    // DefaultReleaseString when empty
	PublicKeyMetadata     []byte
	// PaddingSize pads the output with zeros to a multiple of it (avbtool --padding_size; 0 = none).
	PaddingSize int
	// RequiredLibavbMinor raises the minimum libavb minor version written (footers with flags need 1).
	RequiredLibavbMinor uint32
}

func roundUp(n, m uint64) uint64 {
	if r := n % m; r != 0 {
		return n + m - r
	}
	return n
}

// Sign builds a vbmeta struct and signs it: the hash is over header and auxiliary block, and the
// signature is PKCS#1 v1.5 over that hash with the algorithm's DigestInfo, exactly the bytes avbtool
// makes with `openssl rsautl -sign -raw` on its padding table (PKCS#1 v1.5 is deterministic).
func Sign(opt SignOptions) ([]byte, error) {
	alg := opt.Algorithm
	if !alg.Known() {
		return nil, invalid("unknown algorithm %d", uint32(alg))
	}
	h := Header{RequiredLibavbMajor: libavbMajor, RequiredLibavbMinor: opt.RequiredLibavbMinor}
	bump := func(m uint32) { h.RequiredLibavbMinor = max(h.RequiredLibavbMinor, m) }
	if opt.RollbackIndexLocation > 0 {
		bump(2)
	}
	var desc []byte
	for _, d := range opt.Descriptors {
		desc = append(desc, EncodeDescriptor(d)...)
	}
	used := map[uint32]bool{opt.RollbackIndexLocation: true}
	for _, c := range opt.Chains {
		if c.Location < 1 {
			return nil, invalid("chain partition %s: rollback index location must be 1 or larger", c.Name)
		}
		if used[c.Location] {
			return nil, invalid("chain partition %s: rollback index location %d is already in use", c.Name, c.Location)
		}
		used[c.Location] = true
		if _, err := ParsePublicKey(c.PublicKey); err != nil {
			return nil, invalid("chain partition %s: public key: %v", c.Name, err)
		}
		d := &ChainPartitionDescriptor{RollbackIndexLocation: c.Location, PartitionName: c.Name, PublicKey: c.PublicKey}
		if c.DoNotUseAB {
			d.Flags |= ChainFlagDoNotUseAB
			bump(3)
		}
		desc = append(desc, EncodeDescriptor(d)...)
	}
	for _, p := range opt.Properties {
		desc = append(desc, EncodeDescriptor(&PropertyDescriptor{Key: p.Key, Value: p.Value})...)
	}
	for _, c := range opt.KernelCmdlines {
		desc = append(desc, EncodeDescriptor(&KernelCmdlineDescriptor{Cmdline: c})...)
	}
	named := map[string][]byte{}
	for _, v := range opt.Include {
		bump(v.RequiredLibavbMinor)
		for _, d := range v.Descriptors {
			if kind := pyClassName(d); kind != "" {
				named[kind+"_"+partitionOf(d)] = EncodeDescriptor(d)
			} else {
				desc = append(desc, EncodeDescriptor(d)...)
			}
		}
	}
	keys := make([]string, 0, len(named))
	for k := range named {
		keys = append(keys, k)
	}
	sort.Strings(keys) // avbtool sorts by Python class name + "_" + partition name (byte order)
	for _, k := range keys {
		desc = append(desc, named[k]...)
	}

	var pub []byte
	if alg != AlgorithmNone {
		if opt.Key == nil {
			return nil, invalid("algorithm %s needs a key", alg)
		}
		var err error
		if pub, err = EncodePublicKey(&opt.Key.PublicKey); err != nil {
			return nil, err
		}
		if len(pub) != alg.PublicKeySize() {
			return nil, invalid("a %d-bit key does not fit algorithm %s (needs %d bits)", (len(pub)-8)*4, alg, alg.KeyBits())
		}
	}
	h.ReleaseString = opt.ReleaseString
	if h.ReleaseString == "" {
		h.ReleaseString = DefaultReleaseString
	}
	pkmd := opt.PublicKeyMetadata
	h.AuxBlockSize = roundUp(uint64(len(desc)+len(pub)+len(pkmd)), 64)
	h.DescriptorsOffset, h.DescriptorsSize = 0, uint64(len(desc))
	h.PublicKeyOffset, h.PublicKeySize = h.DescriptorsSize, uint64(len(pub))
	h.PublicKeyMetaOffset, h.PublicKeyMetaSize = h.PublicKeyOffset+h.PublicKeySize, uint64(len(pkmd))
	h.AuthBlockSize = roundUp(uint64(alg.HashSize()+alg.SignatureSize()), 64)
	h.Algorithm = alg
	h.HashOffset, h.HashSize = 0, uint64(alg.HashSize())
	h.SignatureOffset, h.SignatureSize = uint64(alg.HashSize()), uint64(alg.SignatureSize())
	h.RollbackIndex, h.Flags, h.RollbackIndexLocation = opt.RollbackIndex, opt.Flags, opt.RollbackIndexLocation
	if h.Size() > MaxVBMetaSize {
		return nil, invalid("vbmeta struct would be %d bytes, over the %d-byte limit", h.Size(), MaxVBMetaSize)
	}
	hb, err := encodeHeader(&h)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, h.Size())
	out = append(out, hb...)
	out = append(out, make([]byte, h.AuthBlockSize)...)
	aux := make([]byte, h.AuxBlockSize)
	copy(aux, desc)
	copy(aux[len(desc):], pub)
	copy(aux[len(desc)+len(pub):], pkmd)
	out = append(out, aux...)

	if alg != AlgorithmNone {
		hh := alg.Hash().New()
		hh.Write(hb)
		hh.Write(aux)
		digest := hh.Sum(nil)
		sig, err := rsa.SignPKCS1v15(rand.Reader, opt.Key, alg.Hash(), digest)
		if err != nil {
			return nil, invalid("signing: %v", err)
		}
		copy(out[HeaderSize:], digest)
		copy(out[HeaderSize+len(digest):], sig)
	}
	if opt.PaddingSize > 0 {
		out = append(out, make([]byte, int(roundUp(uint64(len(out)), uint64(opt.PaddingSize)))-len(out))...)
	}
	return out, nil
}

// pyClassName is the avbtool class name of a descriptor, which decides the order of included descriptors.
func pyClassName(d Descriptor) string {
	switch d.(type) {
	case *HashtreeDescriptor:
		return "AvbHashtreeDescriptor"
	case *HashDescriptor:
		return "AvbHashDescriptor"
	case *ChainPartitionDescriptor:
		return "AvbChainPartitionDescriptor"
	}
	return ""
}
