package avb

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/safeio"
	"github.com/romforge/romforge/progress"
)

// ErrSignature reports a vbmeta struct whose hash or signature does not match its content.
var ErrSignature = errors.New("avb: vbmeta signature check failed")

// VerifySignature checks the stored hash and the signature of v with the public key embedded in it,
// like libavb's avb_vbmeta_image_verify. An unsigned (NONE) struct passes.
func VerifySignature(v *VBMeta) error {
	alg := v.Algorithm
	if alg == AlgorithmNone {
		return nil
	}
	h := alg.Hash().New()
	h.Write(v.Raw[:HeaderSize])
	h.Write(v.Raw[HeaderSize+v.AuthBlockSize:])
	digest := h.Sum(nil)
	if subtle.ConstantTimeCompare(digest, v.Hash) != 1 {
		return fmt.Errorf("%w: stored %s hash does not match header and auxiliary block", ErrSignature, alg.Hash())
	}
	pub, err := ParsePublicKey(v.PublicKey)
	if err != nil {
		return fmt.Errorf("%w: embedded public key: %v", ErrSignature, err)
	}
	if len(v.PublicKey) != alg.PublicKeySize() {
		return fmt.Errorf("%w: embedded key is not a %d-bit key as %s needs", ErrSignature, alg.KeyBits(), alg)
	}
	if err := rsa.VerifyPKCS1v15(pub, alg.Hash(), digest, v.Signature); err != nil {
		return fmt.Errorf("%w: %s signature does not verify with the embedded key", ErrSignature, alg)
	}
	return nil
}

// ImageSource opens partition images by partition name (e.g. "boot"). The returned close function
// may be nil. A missing image is reported with an error satisfying errors.Is(err, fs.ErrNotExist).
type ImageSource func(name string) (img image.Image, close func() error, err error)

// DirImages opens DIR/NAME+ext (ext like ".img"), the way avbtool verify_image finds partitions.
func DirImages(dir, ext string) ImageSource {
	return func(name string) (image.Image, func() error, error) {
		if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
			return nil, nil, fmt.Errorf("partition name %q: %w", name, fs.ErrNotExist)
		}
		f, err := image.OpenFile(filepath.Join(dir, name+ext))
		if err != nil {
			return nil, nil, err
		}
		return f, f.Close, nil
	}
}

// MapImages serves images from a map.
func MapImages(m map[string]image.Image) ImageSource {
	return func(name string) (image.Image, func() error, error) {
		if img, ok := m[name]; ok {
			return img, nil, nil
		}
		return nil, nil, fmt.Errorf("no image for partition %q: %w", name, fs.ErrNotExist)
	}
}

// VerifyOptions say what to check a vbmeta image against.
type VerifyOptions struct {
	// PublicKey is the expected .avbpubkey blob of the top-level vbmeta; nil trusts the embedded key.
	PublicKey []byte
	// Images opens the partitions named by descriptors; nil checks no partition content.
	Images ImageSource
	// ExpectedChains, when set, must match every chain partition descriptor (location and key).
	ExpectedChains map[string]ChainPartition
	Progress       progress.Reporter
}

// Check is one verification step.
type Check struct {
	Partition string `json:"partition,omitempty"`
	What      string `json:"what"` // signature, public_key, hash, hashtree, chain_partition
	OK        bool   `json:"ok"`
	Skipped   bool   `json:"skipped,omitempty"`
	Message   string `json:"message"`
}

// Report lists every check made.
type Report struct {
	Checks []Check `json:"checks"`
}

// OK reports whether no check failed (skipped checks do not fail).
func (r *Report) OK() bool { return len(r.Failed()) == 0 }

// Failed returns the failed checks.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK && !c.Skipped {
			out = append(out, c)
		}
	}
	return out
}

func (r *Report) add(c Check) { r.Checks = append(r.Checks, c) }

// Verify checks img (a vbmeta image or a partition with a footer; self is the file it came from, used
// for its own descriptors when Images lacks them): the signature, the expected key, every hash and
// hashtree descriptor against its partition image, and chain partitions (expected location and key,
// and the chained vbmeta's signature and descriptors when its image is available). Problems found are
// in the report; the error is for I/O failures and cancellation.
func Verify(ctx context.Context, img *Image, self image.Image, opt VerifyOptions) (*Report, error) {
	r := &Report{}
	err := verifyInto(ctx, r, img, self, opt, opt.PublicKey, 0)
	return r, err
}

func verifyInto(ctx context.Context, r *Report, img *Image, self image.Image, opt VerifyOptions, wantKey []byte, depth int) error {
	v := img.VBMeta
	if err := VerifySignature(v); err != nil {
		r.add(Check{What: "signature", Message: err.Error()})
	} else if v.Algorithm == AlgorithmNone {
		r.add(Check{What: "signature", OK: true, Message: "unsigned (algorithm NONE)"})
	} else {
		r.add(Check{What: "signature", OK: true, Message: fmt.Sprintf("%s signature verified with the embedded key (sha1 %s)", v.Algorithm, v.PublicKeySHA1())})
	}
	if wantKey != nil {
		if bytes.Equal(wantKey, v.PublicKey) {
			r.add(Check{What: "public_key", OK: true, Message: "embedded public key matches the expected key"})
		} else if len(v.PublicKey) == 0 {
			r.add(Check{What: "public_key", Message: "image is unsigned but a key was expected"})
		} else {
			r.add(Check{What: "public_key", Message: fmt.Sprintf("embedded public key (sha1 %s) is not the expected key", v.PublicKeySHA1())})
		}
	}
	for _, d := range v.Descriptors {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		switch d := d.(type) {
		case *HashDescriptor:
			err = withImage(r, opt, img, self, d.PartitionName, "hash", func(pi image.Image) error { return verifyHash(ctx, r, d, pi, opt) })
		case *HashtreeDescriptor:
			err = withImage(r, opt, img, self, d.PartitionName, "hashtree", func(pi image.Image) error { return verifyHashtree(ctx, r, d, pi, opt) })
		case *ChainPartitionDescriptor:
			err = verifyChain(ctx, r, d, opt, depth)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// withImage opens a descriptor's partition (falling back to self for a footer's own partition).
func withImage(r *Report, opt VerifyOptions, img *Image, self image.Image, name, what string, fn func(image.Image) error) error {
	if opt.Images != nil {
		pi, closer, err := opt.Images(name)
		if err == nil {
			if closer != nil {
				defer closer()
			}
			return fn(pi)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("avb: opening %s: %w", name, err)
		}
	}
	if self != nil && img.Footer != nil {
		return fn(self)
	}
	r.add(Check{Partition: name, What: what, Skipped: true, Message: "no image for this partition; content not checked"})
	return nil
}

func verifyHash(ctx context.Context, r *Report, d *HashDescriptor, pi image.Image, opt VerifyOptions) error {
	hash, ok := hashByName(d.HashAlgorithm)
	if !ok {
		r.add(Check{Partition: d.PartitionName, What: "hash", Message: fmt.Sprintf("unsupported hash algorithm %q", d.HashAlgorithm)})
		return nil
	}
	if d.ImageSize > uint64(pi.Size()) {
		r.add(Check{Partition: d.PartitionName, What: "hash", Message: fmt.Sprintf("image is %d bytes, descriptor covers %d", pi.Size(), d.ImageSize)})
		return nil
	}
	task := progress.OrDiscard(opt.Progress).Task("verify "+d.PartitionName, int64(d.ImageSize))
	h := hash.New()
	h.Write(d.Salt)
	_, err := io.CopyBuffer(h, progress.Reader(safeio.ContextReader(ctx, io.NewSectionReader(pi, 0, int64(d.ImageSize))), task), make([]byte, 1<<20))
	task.Done(err)
	if err != nil {
		return fmt.Errorf("avb: reading %s: %w", d.PartitionName, err)
	}
	got := h.Sum(nil)
	switch {
	case len(d.Digest) == 0:
		r.add(Check{Partition: d.PartitionName, What: "hash", Skipped: true, Message: "descriptor uses a persistent digest (none stored); computed " + hex.EncodeToString(got)})
	case bytes.Equal(got, d.Digest):
		r.add(Check{Partition: d.PartitionName, What: "hash", OK: true, Message: fmt.Sprintf("%s of %d bytes matches", d.HashAlgorithm, d.ImageSize)})
	default:
		r.add(Check{Partition: d.PartitionName, What: "hash", Message: fmt.Sprintf("%s digest %s does not match the descriptor's %s", d.HashAlgorithm, hex.EncodeToString(got), hex.EncodeToString(d.Digest))})
	}
	return nil
}

func verifyHashtree(ctx context.Context, r *Report, d *HashtreeDescriptor, pi image.Image, opt VerifyOptions) error {
	fail := func(format string, args ...any) error {
		r.add(Check{Partition: d.PartitionName, What: "hashtree", Message: fmt.Sprintf(format, args...)})
		return nil
	}
	hash, ok := hashByName(d.HashAlgorithm)
	if !ok {
		return fail("unsupported hash algorithm %q", d.HashAlgorithm)
	}
	bs := int64(d.DataBlockSize)
	if bs < 512 || bs > 1<<20 || bs&(bs-1) != 0 || d.HashBlockSize != d.DataBlockSize {
		return fail("block sizes %d/%d are not supported", d.DataBlockSize, d.HashBlockSize)
	}
	if d.ImageSize == 0 || d.ImageSize%uint64(bs) != 0 || d.ImageSize > uint64(pi.Size()) {
		return fail("image size %d in the descriptor does not fit the %d-byte image in %d-byte blocks", d.ImageSize, pi.Size(), bs)
	}
	want := MaxHashtreeSize(int64(d.ImageSize), bs, hash)
	if d.TreeSize != 0 && uint64(want) != d.TreeSize {
		return fail("tree size %d in the descriptor, %d expected for the image size", d.TreeSize, want)
	}
	task := progress.OrDiscard(opt.Progress).Task("verify "+d.PartitionName, int64(d.ImageSize))
	root, tree, err := computeHashtree(ctx, pi, int64(d.ImageSize), int64(d.ImageSize), bs, hash, d.Salt, task)
	task.Done(err)
	if err != nil {
		return fmt.Errorf("avb: hashtree of %s: %w", d.PartitionName, err)
	}
	if len(d.RootDigest) > 0 && !bytes.Equal(root, d.RootDigest) {
		return fail("root digest %s does not match the descriptor's %s: the partition content changed", hex.EncodeToString(root), hex.EncodeToString(d.RootDigest))
	}
	if d.TreeSize > 0 {
		if d.TreeOffset > uint64(pi.Size()) || d.TreeSize > uint64(pi.Size())-d.TreeOffset {
			return fail("hash tree at [%d, +%d) lies outside the %d-byte image", d.TreeOffset, d.TreeSize, pi.Size())
		}
		buf := make([]byte, 1<<20)
		for off := int64(0); off < int64(len(tree)); off += int64(len(buf)) {
			n := min(int64(len(buf)), int64(len(tree))-off)
			if _, err := pi.ReadAt(buf[:n], int64(d.TreeOffset)+off); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("avb: reading hash tree of %s: %w", d.PartitionName, err)
			}
			if !bytes.Equal(buf[:n], tree[off:off+n]) {
				return fail("the hash tree stored at %d differs from the one computed from the content", d.TreeOffset)
			}
		}
	}
	msg := fmt.Sprintf("%s hashtree of %d bytes matches (root %s)", d.HashAlgorithm, d.ImageSize, hex.EncodeToString(root))
	if len(d.RootDigest) == 0 {
		r.add(Check{Partition: d.PartitionName, What: "hashtree", Skipped: true, Message: "descriptor uses a persistent root digest; " + msg})
		return nil
	}
	r.add(Check{Partition: d.PartitionName, What: "hashtree", OK: true, Message: msg})
	return nil
}

func verifyChain(ctx context.Context, r *Report, d *ChainPartitionDescriptor, opt VerifyOptions, depth int) error {
	name := d.PartitionName
	if exp, ok := opt.ExpectedChains[name]; ok {
		switch {
		case exp.Location != d.RollbackIndexLocation:
			r.add(Check{Partition: name, What: "chain_partition", Message: fmt.Sprintf("rollback index location %d, expected %d", d.RollbackIndexLocation, exp.Location)})
		case !bytes.Equal(exp.PublicKey, d.PublicKey):
			r.add(Check{Partition: name, What: "chain_partition", Message: "public key in the descriptor is not the expected key"})
		default:
			r.add(Check{Partition: name, What: "chain_partition", OK: true, Message: "descriptor matches the expected location and key"})
		}
	} else if opt.ExpectedChains != nil {
		r.add(Check{Partition: name, What: "chain_partition", Message: "no expected key given for this chained partition"})
	}
	if depth > 0 {
		// libavb accepts chain descriptors only in the top-level vbmeta
		r.add(Check{Partition: name, What: "chain_partition", Message: "a chained vbmeta may not chain further partitions"})
		return nil
	}
	if opt.Images == nil {
		r.add(Check{Partition: name, What: "chain_partition", Skipped: true, Message: "no images given; the chained vbmeta was not checked"})
		return nil
	}
	pi, closer, err := opt.Images(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			r.add(Check{Partition: name, What: "chain_partition", Skipped: true, Message: "no image for the chained partition; its vbmeta was not checked"})
			return nil
		}
		return fmt.Errorf("avb: opening %s: %w", name, err)
	}
	if closer != nil {
		defer closer()
	}
	ci, err := Load(pi)
	if err != nil {
		r.add(Check{Partition: name, What: "chain_partition", Message: fmt.Sprintf("chained vbmeta unreadable: %v", err)})
		return nil
	}
	sub := &Report{}
	if err := verifyInto(ctx, sub, ci, pi, VerifyOptions{Images: opt.Images, Progress: opt.Progress}, d.PublicKey, depth+1); err != nil {
		return err
	}
	for _, c := range sub.Checks {
		if c.Partition == "" {
			c.Partition = name
			c.Message = "chained vbmeta: " + c.Message
		}
		r.add(c)
	}
	return nil
}

// ReadImageFile loads the vbmeta struct of a file (vbmeta image or partition with a footer).
func ReadImageFile(path string) (*Image, *image.File, error) {
	f, err := image.OpenFile(path)
	if err != nil {
		return nil, nil, err
	}
	img, err := Load(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, f, nil
}
