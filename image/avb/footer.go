package avb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/romforge/romforge/image"
)

// Footer is AvbFooter, the last 64 bytes of a partition image that carries its own vbmeta struct.
type Footer struct {
	VersionMajor      uint32
	VersionMinor      uint32
	OriginalImageSize uint64 // size of the partition content before AVB data was appended
	VBMetaOffset      uint64
	VBMetaSize        uint64
}

// ParseFooter decodes a 64-byte footer.
func ParseFooter(b []byte) (*Footer, error) {
	if len(b) < FooterSize {
		return nil, formatErr(0, "footer truncated: %d of %d bytes", len(b), FooterSize)
	}
	if string(b[:4]) != footerMagic {
		return nil, ErrNoFooter
	}
	f := &Footer{
		VersionMajor:      be32(b[4:]),
		VersionMinor:      be32(b[8:]),
		OriginalImageSize: be64(b[12:]),
		VBMetaOffset:      be64(b[20:]),
		VBMetaSize:        be64(b[28:]),
	}
	if f.VersionMajor != 1 {
		return nil, formatErr(4, "footer version %d.%d is not supported (want 1.x)", f.VersionMajor, f.VersionMinor)
	}
	return f, nil
}

// Encode returns the 64-byte on-disk footer.
func (f *Footer) Encode() []byte {
	b := make([]byte, FooterSize)
	copy(b, footerMagic)
	binary.BigEndian.PutUint32(b[4:], f.VersionMajor)
	binary.BigEndian.PutUint32(b[8:], f.VersionMinor)
	binary.BigEndian.PutUint64(b[12:], f.OriginalImageSize)
	binary.BigEndian.PutUint64(b[20:], f.VBMetaOffset)
	binary.BigEndian.PutUint64(b[28:], f.VBMetaSize)
	return b
}

// ReadFooter reads the footer in the last 64 bytes of img and checks that what it points to lies inside
// img. Without a footer it returns an error satisfying errors.Is(err, ErrNoFooter).
func ReadFooter(img image.Image) (*Footer, error) {
	size := img.Size()
	if size < FooterSize {
		return nil, ErrNoFooter
	}
	b := make([]byte, FooterSize)
	if _, err := img.ReadAt(b, size-FooterSize); err != nil && !(errors.Is(err, io.EOF)) {
		return nil, fmt.Errorf("avb: reading footer: %w", err)
	}
	f, err := ParseFooter(b)
	if err != nil {
		return nil, err
	}
	end := uint64(size - FooterSize)
	if f.OriginalImageSize > end {
		return nil, formatErr(size-FooterSize+12, "footer: original image size %d is beyond the image (%d bytes)", f.OriginalImageSize, size)
	}
	if f.VBMetaOffset > end || f.VBMetaSize > end-f.VBMetaOffset {
		return nil, formatErr(size-FooterSize+20, "footer: vbmeta at [%d, +%d) lies outside the image (%d bytes)", f.VBMetaOffset, f.VBMetaSize, size)
	}
	if f.VBMetaSize < HeaderSize || f.VBMetaSize > MaxVBMetaSize {
		return nil, formatErr(size-FooterSize+28, "footer: vbmeta size %d is outside %d..%d", f.VBMetaSize, HeaderSize, MaxVBMetaSize)
	}
	return f, nil
}

// Image is a vbmeta struct as found in a file: a vbmeta partition image (Footer nil) or a partition
// image with an AVB footer.
type Image struct {
	Footer *Footer
	VBMeta *VBMeta
	Size   int64 // size of the whole file
	Offset int64 // where the vbmeta struct starts
}

// Load finds the vbmeta struct in img: behind the footer when there is one, else at offset 0.
func Load(img image.Image) (*Image, error) {
	out := &Image{Size: img.Size()}
	f, err := ReadFooter(img)
	switch {
	case err == nil:
		out.Footer = f
		out.Offset = int64(f.VBMetaOffset)
	case errors.Is(err, ErrNoFooter):
	default:
		return nil, err
	}
	r := io.NewSectionReader(img, 0, img.Size())
	if out.Footer != nil {
		r = io.NewSectionReader(img, out.Offset, int64(out.Footer.VBMetaSize))
	}
	v, err := ReadVBMeta(r, 0)
	if err != nil {
		if out.Footer != nil {
			return nil, fmt.Errorf("avb: vbmeta at offset %d (from the footer): %w", out.Offset, err)
		}
		return nil, err
	}
	out.VBMeta = v
	return out, nil
}
