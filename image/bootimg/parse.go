package bootimg

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/romforge/romforge/internal/safeio"
)

// avbFooterMagic marks an AVB footer in the last 64 bytes of a partition image.
const avbFooterMagic = "AVBf"

// Image is a parsed boot or vendor_boot image. Section bytes are read from the underlying ReaderAt on
// demand; Parse itself reads only the header, the vendor ramdisk table and the padding areas.
type Image struct {
	Header   *Header
	Sections []Section // sections present (size > 0), in file order

	// End is where the last section's page padding ends; bytes from End to the end of the input are
	// the tail (an AVB footer, partition padding), kept by Unpack and Repack.
	End int64
	// Short counts padding bytes of the last section missing at the end of the input (an image
	// written without its final padding); Repack leaves them out again.
	Short int64
	// Notes describe oddities that Parse accepted (non-standard offsets and the like).
	Notes []string

	r    io.ReaderAt
	size int64
	// padding holds padding areas that are not all zero, by the section they follow ("header" for the
	// rest of the header page). Repack writes them back when that section is unchanged.
	padding map[string][]byte
	// rawTable is the vendor ramdisk table as read when it is not what its entries re-encode to.
	rawTable []byte
	// rawRamdisks is set when the vendor ramdisk entries do not tile the vendor ramdisk section in order.
	rawRamdisks bool
}

// Size is the size of the input image.
func (im *Image) Size() int64 { return im.size }

// IsBootImage reports whether head starts with a boot or vendor_boot magic.
func IsBootImage(head []byte) bool { return IsBoot(head) || IsVendorBoot(head) }

// IsBoot reports whether head starts a boot (or recovery, init_boot) image: ANDROID!.
func IsBoot(head []byte) bool { return bytes.HasPrefix(head, []byte(BootMagic)) }

// IsVendorBoot reports whether head starts a vendor_boot image: VNDRBOOT.
func IsVendorBoot(head []byte) bool { return bytes.HasPrefix(head, []byte(VendorBootMagic)) }

// Parse reads the header of a boot or vendor_boot image of the given size and locates its sections.
// Every size and offset is checked against size; a corrupt image gives a *FormatError.
func Parse(ra io.ReaderAt, size int64) (*Image, error) {
	if size < 8 {
		return nil, formatErr(0, "%d bytes is too short for a boot image", size)
	}
	n := min(size, int64(vendorV4Len))
	buf := make([]byte, n)
	if _, err := ra.ReadAt(buf, 0); err != nil && !(err == io.EOF) {
		return nil, &FormatError{Offset: 0, Msg: "reading the header", Err: err}
	}
	var kind Kind
	switch string(buf[:8]) {
	case BootMagic:
		kind = KindBoot
	case VendorBootMagic:
		kind = KindVendorBoot
	default:
		return nil, formatErr(0, "magic %q is neither %q nor %q: not a boot or vendor_boot image", buf[:8], BootMagic, VendorBootMagic)
	}
	if n < 44 {
		return nil, formatErr(n, "header truncated")
	}
	h, err := decodeHeader(buf, kind)
	if err != nil {
		return nil, err
	}
	im := &Image{Header: h, r: ra, size: size}
	if err := im.locate(); err != nil {
		return nil, err
	}
	return im, nil
}

func validPageSize(p uint32) bool {
	return p >= minPageSize && p <= maxPageSize && p&(p-1) == 0
}

func (im *Image) locate() error {
	h := im.Header
	if (h.Kind == KindVendorBoot || h.HeaderVersion < 3) && !validPageSize(h.PageSize) {
		if h.Kind == KindBoot && h.DTSize != 0 {
			return formatErr(36, "page size %d is invalid, and the header_version word %d is neither a known version (0–4) nor a plausible QCOM dt size", h.PageSize, h.DTSize)
		}
		return formatErr(36, "page size %d is invalid (want a power of two from %d to %d)", h.PageSize, minPageSize, maxPageSize)
	}
	secs, end := h.layout()
	if hs := h.headerSpan(); hs > im.size {
		return formatErr(0, "header needs %d bytes but the image has %d: truncated", hs, im.size)
	}
	for i, s := range secs {
		if s.Name == SecRecoveryDTBO && s.Size > 0 && h.RecoveryDTBOOffset != uint64(s.Offset) {
			// AOSP unpack_bootimg reads recovery_dtbo at the recorded offset; so do we. Repack puts it
			// at the standard place, which is where mkbootimg always puts it.
			if h.RecoveryDTBOOffset > uint64(im.size) {
				return formatErr(1636, "recovery_dtbo offset %d beyond the image (%d bytes)", h.RecoveryDTBOOffset, im.size)
			}
			im.Notes = append(im.Notes, fmt.Sprintf("recovery_dtbo_offset %d is not the standard %d; repack moves it", h.RecoveryDTBOOffset, s.Offset))
			secs[i].Offset = int64(h.RecoveryDTBOOffset)
			s = secs[i]
		}
		if err := safeio.CheckRange(s.Offset, s.Size, im.size); err != nil {
			return formatErr(s.Offset, "%s (%d bytes at offset %d) runs past the end of the image (%d bytes): truncated or corrupt header", s.Name, s.Size, s.Offset, im.size)
		}
		if s.Size > 0 {
			im.Sections = append(im.Sections, s)
		}
	}
	im.End = end
	if im.size < end {
		im.Short = end - im.size
		im.End = im.size
	}
	if err := im.readPadding(secs, end); err != nil {
		return err
	}
	if h.Kind == KindVendorBoot && h.HeaderVersion >= 4 {
		return im.readRamdiskTable()
	}
	if h.Kind == KindBoot && h.HeaderVersion == 0 && h.DTSize != 0 && im.sectionByName(SecDT) == nil {
		return formatErr(40, "QCOM dt size %d: no dt section", h.DTSize)
	}
	return nil
}

// readPadding keeps padding areas that are not all zero.
func (im *Image) readPadding(secs []Section, end int64) error {
	h := im.Header
	page := h.pageSize()
	type area struct {
		name     string
		off, len int64
	}
	areas := []area{{"header", int64(h.headerLen()), h.headerSpan() - int64(h.headerLen())}}
	for _, s := range secs {
		if s.Size > 0 {
			areas = append(areas, area{s.Name, s.Offset + s.Size, roundUp(s.Size, page) - s.Size})
		}
	}
	for _, a := range areas {
		n := min(a.len, im.size-a.off)
		if n <= 0 {
			continue
		}
		b, err := safeio.ReadDataAt(im.r, uint64(n), a.off)
		if err != nil {
			return &FormatError{Offset: a.off, Msg: "reading padding after " + a.name, Err: err}
		}
		if !safeio.AllZero(b) {
			if im.padding == nil {
				im.padding = map[string][]byte{}
			}
			im.padding[a.name] = b
		}
	}
	return nil
}

func (im *Image) sectionByName(name string) *Section {
	for i := range im.Sections {
		if im.Sections[i].Name == name {
			return &im.Sections[i]
		}
	}
	return nil
}

// readRamdiskTable decodes the vendor_boot v4 ramdisk table and checks each entry against the vendor
// ramdisk section.
func (im *Image) readRamdiskTable() error {
	h := im.Header
	if h.VendorRamdiskTableEntryNum == 0 {
		im.rawRamdisks = h.RamdiskSize != 0 // bytes no entry describes
		if h.VendorRamdiskTableSize != 0 {
			var err error
			if im.rawTable, err = im.readSection(SecRamdiskTable); err != nil {
				return err
			}
		}
		return nil
	}
	if h.VendorRamdiskTableEntrySize < tableEntrySizeV4 {
		return formatErr(2120, "vendor ramdisk table entry size %d is smaller than %d", h.VendorRamdiskTableEntrySize, tableEntrySizeV4)
	}
	if uint64(h.VendorRamdiskTableEntryNum)*uint64(h.VendorRamdiskTableEntrySize) > uint64(h.VendorRamdiskTableSize) {
		return formatErr(2116, "vendor ramdisk table: %d entries of %d bytes do not fit its %d bytes", h.VendorRamdiskTableEntryNum, h.VendorRamdiskTableEntrySize, h.VendorRamdiskTableSize)
	}
	tab, err := im.readSection(SecRamdiskTable)
	if err != nil {
		return err
	}
	es := int(h.VendorRamdiskTableEntrySize)
	var next uint32
	tiled := true
	for i := 0; i < int(h.VendorRamdiskTableEntryNum); i++ {
		e := tab[i*es : (i+1)*es]
		vr := VendorRamdisk{
			Size:    le32(e, 0),
			Offset:  le32(e, 4),
			Type:    le32(e, 8),
			Name:    safeio.CString(e[12:44]),
			rawName: append([]byte(nil), e[12:44]...),
		}
		for j := range vr.BoardID {
			vr.BoardID[j] = le32(e, 44+4*j)
		}
		if es > tableEntrySizeV4 {
			vr.extra = append([]byte(nil), e[tableEntrySizeV4:]...)
		}
		if uint64(vr.Offset)+uint64(vr.Size) > uint64(h.RamdiskSize) {
			return formatErr(-1, "vendor ramdisk %d (%q): %d bytes at %d run past the vendor ramdisk section (%d bytes)", i, vr.Name, vr.Size, vr.Offset, h.RamdiskSize)
		}
		if vr.Offset != next {
			tiled = false
		}
		next = vr.Offset + vr.Size
		h.VendorRamdisks = append(h.VendorRamdisks, vr)
	}
	if next != h.RamdiskSize {
		tiled = false
	}
	im.rawRamdisks = !tiled
	if es != tableEntrySizeV4 || int(h.VendorRamdiskTableSize) != len(h.VendorRamdisks)*es {
		im.rawTable = tab
	}
	return nil
}

// Open returns a reader over the named section, or nil if the image has none.
func (im *Image) Open(name string) *io.SectionReader {
	s := im.sectionByName(name)
	if s == nil {
		return nil
	}
	return io.NewSectionReader(im.r, s.Offset, s.Size)
}

// VendorRamdisk returns a reader over vendor ramdisk table entry i.
func (im *Image) VendorRamdisk(i int) *io.SectionReader {
	s := im.sectionByName(SecVendorRamdisk)
	if s == nil || i < 0 || i >= len(im.Header.VendorRamdisks) {
		return nil
	}
	e := im.Header.VendorRamdisks[i]
	return io.NewSectionReader(im.r, s.Offset+int64(e.Offset), int64(e.Size))
}

// readSection reads a whole (bounds-checked) section into memory; empty when absent.
func (im *Image) readSection(name string) ([]byte, error) {
	s := im.sectionByName(name)
	if s == nil {
		return nil, nil
	}
	b, err := safeio.ReadDataAt(im.r, uint64(s.Size), s.Offset)
	if err != nil {
		return nil, &FormatError{Offset: s.Offset, Msg: "reading " + name, Err: err}
	}
	return b, nil
}

// Tail returns a reader over the bytes after the last section's padding (nil when there are none).
func (im *Image) Tail() *io.SectionReader {
	if im.size <= im.End {
		return nil
	}
	return io.NewSectionReader(im.r, im.End, im.size-im.End)
}

// HasAVBFooter reports whether the image ends in an AVB footer (an "AVBf" block in its last 64 bytes
// after the sections), as a boot partition image with a hash footer does.
func (im *Image) HasAVBFooter() bool {
	if im.size-im.End < 64 {
		return false
	}
	var m [4]byte
	if _, err := im.r.ReadAt(m[:], im.size-64); err != nil {
		return false
	}
	return string(m[:]) == avbFooterMagic
}

func encodeTableEntry(vr *VendorRamdisk) ([]byte, error) {
	b := make([]byte, tableEntrySizeV4, tableEntrySizeV4+len(vr.extra))
	binary.LittleEndian.PutUint32(b[0:], vr.Size)
	binary.LittleEndian.PutUint32(b[4:], vr.Offset)
	binary.LittleEndian.PutUint32(b[8:], vr.Type)
	name, err := fieldBytes("ramdisk_name", vr.Name, vr.rawName, ramdiskNameSize)
	if err != nil {
		return nil, err
	}
	copy(b[12:44], name)
	for j, w := range vr.BoardID {
		binary.LittleEndian.PutUint32(b[44+4*j:], w)
	}
	return append(b, vr.extra...), nil
}
