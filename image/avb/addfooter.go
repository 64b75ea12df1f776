package avb

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/safeio"
	"github.com/romforge/romforge/progress"
)

// File is a partition image opened for update (an *os.File satisfies it).
type File interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
}

// Room avbtool reserves for the vbmeta struct and the footer block when sizing a partition.
const (
	maxMetadataSize = MaxVBMetaSize + 4096
	footerBlockSize = 4096
)

// FooterOptions describe a hash or hashtree footer to add.
type FooterOptions struct {
	PartitionName string
	// PartitionSize is the size of the partition; the footer lands in its last 64 bytes. For a
	// hashtree footer 0 means "just after the vbmeta struct"; for a hash footer 0 means the smallest
	// size avbtool's --dynamic_partition_size would pick.
	PartitionSize int64
	// Salt for the digests. nil: the salt of the footer being replaced (same partition name and hash),
	// otherwise random bytes as long as the digest. An empty non-nil slice means no salt.
	Salt []byte
	// HashAlgorithm is "sha1", "sha256" (default) or "sha512".
	HashAlgorithm string
	// BlockSize is the dm-verity data and hash block size (hashtree only; default 4096).
	BlockSize int64
	// Signing: Algorithm NONE (default) leaves the footer's vbmeta unsigned.
	Algorithm             Algorithm
	Key                   *rsa.PrivateKey
	RollbackIndex         uint64
	RollbackIndexLocation uint32
	Flags                 uint32
	Properties            []Property
	Chains                []ChainPartition
	ReleaseString         string
	DoNotUseAB            bool
	CheckAtMostOnce       bool // hashtree only
	Progress              progress.Reporter
}

// FooterResult says what was written.
type FooterResult struct {
	Footer        Footer
	Hash          *HashDescriptor     // set by AddHashFooter
	Hashtree      *HashtreeDescriptor // set by AddHashtreeFooter
	ReplacedOld   bool                // an existing footer was replaced
	FECPreserved  bool                // the replaced footer's FEC data was kept (content unchanged)
	Notes         []string            // what the user should know, e.g. that FEC was dropped
	PartitionSize int64               // final size of the image file
}

func (o *FooterOptions) hash() (crypto.Hash, string, error) {
	name := o.HashAlgorithm
	if name == "" {
		name = "sha256"
	}
	h, ok := hashByName(name)
	if !ok {
		return 0, "", invalid("hash algorithm %q is not supported (sha1, sha256, sha512)", o.HashAlgorithm)
	}
	return h, name, nil
}

// existing reads the footer and vbmeta already at the end of f, if any.
func existing(f File, size int64) (*Image, error) {
	whole := image.New(f, size)
	if _, err := ReadFooter(whole); errors.Is(err, ErrNoFooter) {
		return nil, nil
	}
	img, err := Load(whole)
	if err != nil {
		return nil, fmt.Errorf("avb: existing footer: %w (start from the original image, or erase it with 'avbtool erase_footer')", err)
	}
	return img, nil
}

func (o *FooterOptions) salt(oldSalt []byte, digestSize int) ([]byte, error) {
	switch {
	case o.Salt != nil:
		return o.Salt, nil
	case oldSalt != nil:
		return oldSalt, nil
	}
	s := make([]byte, digestSize)
	if _, err := rand.Read(s); err != nil {
		return nil, err
	}
	return s, nil
}

func (o *FooterOptions) signOptions(d Descriptor, minor uint32) SignOptions {
	return SignOptions{
		Algorithm: o.Algorithm, Key: o.Key, RollbackIndex: o.RollbackIndex,
		RollbackIndexLocation: o.RollbackIndexLocation, Flags: o.Flags, Descriptors: []Descriptor{d},
		Chains: o.Chains, Properties: o.Properties, ReleaseString: o.ReleaseString, RequiredLibavbMinor: minor,
	}
}

// writeTail writes vbmeta at off, then grows the file to partSize (0: just after the vbmeta struct
// plus a footer block) and writes the footer block at its end.
func writeTail(f File, off int64, vbmeta []byte, partSize int64, footer *Footer) (int64, error) {
	padded := int64(roundUp(uint64(len(vbmeta)), footerBlockSize))
	if _, err := f.WriteAt(vbmeta, off); err != nil {
		return 0, fmt.Errorf("avb: writing vbmeta: %w", err)
	}
	end := off + padded + footerBlockSize
	if partSize > 0 {
		if end > partSize {
			return 0, invalid("image, tree and vbmeta (%d bytes) do not fit the %d-byte partition", end, partSize)
		}
		end = partSize
	}
	if err := f.Truncate(end); err != nil {
		return 0, fmt.Errorf("avb: growing image: %w", err)
	}
	blk := make([]byte, footerBlockSize)
	copy(blk[footerBlockSize-FooterSize:], footer.Encode())
	if _, err := f.WriteAt(blk, end-footerBlockSize); err != nil {
		return 0, fmt.Errorf("avb: writing footer: %w", err)
	}
	return end, nil
}

// AddHashFooter hashes the partition content of f (size bytes now), and appends a vbmeta struct with
// one hash descriptor plus a footer, replacing an existing footer (the content before it is kept). The
// result is what `avbtool add_hash_footer` writes for the same options and salt.
func AddHashFooter(ctx context.Context, f File, size int64, opt FooterOptions) (*FooterResult, error) {
	hash, hashName, err := opt.hash()
	if err != nil {
		return nil, err
	}
	old, err := existing(f, size)
	if err != nil {
		return nil, err
	}
	orig := size
	var oldSalt []byte
	res := &FooterResult{}
	if old != nil {
		orig = int64(old.Footer.OriginalImageSize)
		res.ReplacedOld = true
		for _, d := range old.VBMeta.Descriptors {
			if hd, ok := d.(*HashDescriptor); ok && hd.PartitionName == opt.PartitionName && hd.HashAlgorithm == hashName {
				oldSalt = hd.Salt
			}
		}
	}
	part := opt.PartitionSize
	if part == 0 {
		part = int64(roundUp(uint64(orig+maxMetadataSize), footerBlockSize))
	}
	if part < maxMetadataSize {
		return nil, invalid("partition size %d is too small: it needs at least %d bytes for AVB metadata", part, maxMetadataSize)
	}
	if part%footerBlockSize != 0 {
		return nil, invalid("partition size %d is not a multiple of %d", part, footerBlockSize)
	}
	if orig > part-maxMetadataSize {
		return nil, invalid("image of %d bytes exceeds the %d bytes a %d-byte partition leaves for it", orig, part-maxMetadataSize, part)
	}
	salt, err := opt.salt(oldSalt, hash.Size())
	if err != nil {
		return nil, err
	}
	task := progress.OrDiscard(opt.Progress).Task("avb hash "+opt.PartitionName, orig)
	h := hash.New()
	h.Write(salt)
	if _, err := io.CopyBuffer(h, progress.Reader(safeio.ContextReader(ctx, io.NewSectionReader(f, 0, orig)), task), make([]byte, 1<<20)); err != nil {
		task.Done(err)
		return nil, fmt.Errorf("avb: hashing %s: %w", opt.PartitionName, err)
	}
	task.Done(nil)
	d := &HashDescriptor{ImageSize: uint64(orig), HashAlgorithm: hashName, PartitionName: opt.PartitionName, Salt: salt, Digest: h.Sum(nil)}
	var minor uint32
	if opt.DoNotUseAB {
		d.Flags |= DescriptorFlagDoNotUseAB
		minor = 1
	}
	vb, err := Sign(opt.signOptions(d, minor))
	if err != nil {
		return nil, err
	}
	// Everything is computed; now change the file: cut to the content, pad it to a block, append.
	if err := f.Truncate(orig); err != nil {
		return nil, fmt.Errorf("avb: truncating to the original size: %w", err)
	}
	vbOff := int64(roundUp(uint64(orig), footerBlockSize))
	res.Footer = Footer{VersionMajor: 1, OriginalImageSize: uint64(orig), VBMetaOffset: uint64(vbOff), VBMetaSize: uint64(len(vb))}
	end, err := writeTail(f, vbOff, vb, part, &res.Footer)
	if err != nil {
		f.Truncate(orig)
		return nil, err
	}
	res.Hash, res.PartitionSize = d, end
	return res, nil
}

// AddHashtreeFooter computes the dm-verity hash tree of the partition content of f (size bytes now),
// and appends tree, vbmeta struct (one hashtree descriptor) and footer, replacing an existing footer.
// The result is what `avbtool add_hashtree_footer --do_not_generate_fec` writes for the same options
// and salt. FEC cannot be computed here: existing FEC data is kept only when the content and tree are
// unchanged (same root digest and salt); otherwise it is dropped and Notes says so.
func AddHashtreeFooter(ctx context.Context, f File, size int64, opt FooterOptions) (*FooterResult, error) {
	hash, hashName, err := opt.hash()
	if err != nil {
		return nil, err
	}
	bs := opt.BlockSize
	if bs == 0 {
		bs = 4096
	}
	if bs < 512 || bs > 1<<20 || bs&(bs-1) != 0 {
		return nil, invalid("block size %d must be a power of two between 512 and 1 MiB", bs)
	}
	old, err := existing(f, size)
	if err != nil {
		return nil, err
	}
	orig := size
	res := &FooterResult{}
	var oldHT *HashtreeDescriptor
	if old != nil {
		orig = int64(old.Footer.OriginalImageSize)
		res.ReplacedOld = true
		for _, d := range old.VBMeta.Descriptors {
			if ht, ok := d.(*HashtreeDescriptor); ok && ht.PartitionName == opt.PartitionName {
				oldHT = ht
			}
		}
	}
	rounded := int64(roundUp(uint64(orig), uint64(bs)))
	if rounded == 0 {
		return nil, invalid("image is empty")
	}
	part := opt.PartitionSize
	if part > 0 {
		if part%footerBlockSize != 0 {
			return nil, invalid("partition size %d is not a multiple of %d", part, footerBlockSize)
		}
		maxImage := part - MaxHashtreeSize(part, bs, hash) - maxMetadataSize
		if rounded > maxImage {
			return nil, invalid("image of %d bytes exceeds the %d bytes a %d-byte partition leaves for it after tree and metadata", rounded, maxImage, part)
		}
	}
	var oldSalt []byte
	if oldHT != nil && oldHT.HashAlgorithm == hashName {
		oldSalt = oldHT.Salt
	}
	salt, err := opt.salt(oldSalt, hash.Size())
	if err != nil {
		return nil, err
	}
	task := progress.OrDiscard(opt.Progress).Task("avb hashtree "+opt.PartitionName, rounded)
	root, tree, err := computeHashtree(ctx, f, orig, rounded, bs, hash, salt, task)
	task.Done(err)
	if err != nil {
		return nil, fmt.Errorf("avb: hashtree of %s: %w", opt.PartitionName, err)
	}
	d := &HashtreeDescriptor{
		DMVerityVersion: 1, ImageSize: uint64(rounded), TreeOffset: uint64(rounded), TreeSize: uint64(len(tree)),
		DataBlockSize: uint32(bs), HashBlockSize: uint32(bs), HashAlgorithm: hashName,
		PartitionName: opt.PartitionName, Salt: salt, RootDigest: root,
	}
	var minor uint32
	if opt.DoNotUseAB {
		d.Flags |= DescriptorFlagDoNotUseAB
		minor = 1
	}
	if opt.CheckAtMostOnce {
		d.Flags |= HashtreeFlagCheckAtMostOnce
		minor = 1
	}
	treeEnd := rounded + int64(roundUp(uint64(len(tree)), footerBlockSize))
	var keep int64 // with FEC preserved: end of the FEC data, kept in place
	vbOff := treeEnd
	if oldHT != nil && oldHT.FECSize > 0 {
		same := oldHT.ImageSize == d.ImageSize && oldHT.TreeOffset == d.TreeOffset && oldHT.TreeSize == d.TreeSize &&
			oldHT.DataBlockSize == d.DataBlockSize && oldHT.HashBlockSize == d.HashBlockSize &&
			oldHT.HashAlgorithm == hashName && bytes.Equal(oldHT.Salt, salt) && bytes.Equal(oldHT.RootDigest, root) &&
			oldHT.FECOffset == uint64(treeEnd) && oldHT.FECSize <= uint64(size-treeEnd)
		if same {
			d.FECNumRoots, d.FECOffset, d.FECSize = oldHT.FECNumRoots, oldHT.FECOffset, oldHT.FECSize
			keep = int64(oldHT.FECOffset + oldHT.FECSize)
			vbOff = treeEnd + int64(roundUp(oldHT.FECSize, footerBlockSize))
			res.FECPreserved = true
			res.Notes = append(res.Notes, fmt.Sprintf("FEC kept: content and hash tree are unchanged (%d roots, %d bytes at %d)", d.FECNumRoots, d.FECSize, d.FECOffset))
		} else {
			res.Notes = append(res.Notes, fmt.Sprintf("FEC dropped: the previous footer had %d bytes of FEC (%d roots) for different content or tree; romforge cannot compute FEC (no encoder), so the partition has no error correction now — dm-verity still verifies it", oldHT.FECSize, oldHT.FECNumRoots))
		}
	}
	vb, err := Sign(opt.signOptions(d, minor))
	if err != nil {
		return nil, err
	}
	// Everything is computed; now change the file.
	cut := orig
	if res.FECPreserved {
		cut = keep
	}
	if err := f.Truncate(cut); err != nil {
		return nil, fmt.Errorf("avb: truncating to the content: %w", err)
	}
	if rounded > orig {
		if _, err := f.WriteAt(make([]byte, rounded-orig), orig); err != nil {
			return nil, fmt.Errorf("avb: padding image: %w", err)
		}
	}
	if _, err := f.WriteAt(tree, rounded); err != nil {
		f.Truncate(orig)
		return nil, fmt.Errorf("avb: writing hash tree: %w", err)
	}
	res.Footer = Footer{VersionMajor: 1, OriginalImageSize: uint64(orig), VBMetaOffset: uint64(vbOff), VBMetaSize: uint64(len(vb))}
	end, err := writeTail(f, vbOff, vb, part, &res.Footer)
	if err != nil {
		f.Truncate(orig)
		return nil, err
	}
	res.Hashtree, res.PartitionSize = d, end
	return res, nil
}
