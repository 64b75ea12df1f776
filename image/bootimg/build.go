package bootimg

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
)

// Args are mkbootimg's arguments. Parts are image.Images (nil = not given); DefaultArgs gives
// mkbootimg's default addresses and page size.
type Args struct {
	HeaderVersion uint32
	// VendorBoot builds a vendor_boot image (mkbootimg --vendor_boot) instead of a boot image.
	VendorBoot bool

	Kernel, Ramdisk, Second image.Image
	DT                      image.Image // QCOM --dt (header v0 only; its size goes in the header_version word)
	RecoveryDTBO, DTB       image.Image
	// Signature is a boot v4 boot signature section, written as given (mkbootimg makes a 4096-byte
	// one only when GKI signing is requested, which this package does not do).
	Signature image.Image

	VendorRamdisk          image.Image       // --vendor_ramdisk (vendor_boot; v4: table entry 0, type platform)
	VendorRamdiskFragments []RamdiskFragment // v4: --ramdisk_type/--ramdisk_name/--board_idN/--vendor_ramdisk_fragment
	Bootconfig             image.Image       // v4: --vendor_bootconfig

	Cmdline       string
	VendorCmdline string
	Board         string
	OSVersion     string // "A.B.C"
	OSPatchLevel  string // "YYYY-MM"

	Base, KernelOffset, RamdiskOffset, SecondOffset, TagsOffset uint32
	DTBOffset                                                   uint64
	PageSize                                                    uint32

	// Legacy reproduces Debian's mkbootimg 29 (Android 10): the id hashes no dt, the command line is
	// split at 512 bytes without a terminator, boot v3 header_size is 1596 and vendor_boot v3 2108.
	Legacy bool
}

// RamdiskFragment is one vendor ramdisk of a vendor_boot v4 image.
type RamdiskFragment struct {
	Type    uint32
	Name    string
	BoardID [boardIDWords]uint32
	Data    image.Image
}

// DefaultArgs returns mkbootimg's defaults.
func DefaultArgs() Args {
	return Args{
		Base: 0x10000000, KernelOffset: 0x00008000, RamdiskOffset: 0x01000000,
		SecondOffset: 0x00f00000, TagsOffset: 0x00000100, DTBOffset: 0x01f00000, PageSize: 2048,
	}
}

func argErr(format string, args ...any) error {
	return failure.Kinded(failure.ErrUsage, fmt.Errorf("bootimg: "+format, args...))
}

func partSize(p image.Image) int64 {
	if p == nil {
		return 0
	}
	return p.Size()
}

func addr32(name string, base, off uint32) (uint32, error) {
	s := uint64(base) + uint64(off)
	if s > math.MaxUint32 {
		return 0, argErr("base 0x%x + %s 0x%x does not fit in 32 bits", base, name, off)
	}
	return uint32(s), nil
}

// Build assembles a boot or vendor_boot image from parts the way AOSP mkbootimg does (Debian's
// mkbootimg 29 with a.Legacy), so the output equals theirs byte for byte.
func Build(a *Args) (*Output, error) {
	if a.VendorBoot {
		return buildVendor(a)
	}
	v := a.HeaderVersion
	if v > 4 {
		return nil, argErr("boot header version %d is not supported (0–4)", v)
	}
	if a.Second != nil && v > 2 {
		return nil, argErr("a second-stage bootloader needs header version 0–2")
	}
	if a.DT != nil && v > 0 {
		return nil, argErr("a QCOM dt image needs header version 0")
	}
	h := &Header{Kind: KindBoot, HeaderVersion: v}
	var err error
	if h.OSVersion, h.OSPatchLevel, err = normOS(a.OSVersion, a.OSPatchLevel); err != nil {
		return nil, err
	}
	parts := map[string]image.Image{SecKernel: a.Kernel, SecRamdisk: a.Ramdisk}
	if v >= 3 {
		max := v3ArgsSize - 1
		if a.Legacy {
			max = v3ArgsSize
		}
		if len(a.Cmdline) > max {
			return nil, argErr("command line is %d bytes, at most %d fit", len(a.Cmdline), max)
		}
		h.Cmdline = a.Cmdline
		h.HeaderSize = bootV3Len
		if v == 3 && a.Legacy {
			h.HeaderSize = 1596
		}
		if v == 4 {
			h.HeaderSize = bootV4Len
			parts[SecSignature] = a.Signature
		}
		return (&assembly{h: h, parts: parts}).output()
	}
	if !validPageSize(a.PageSize) || a.PageSize > 16384 {
		return nil, argErr("page size %d: mkbootimg takes 2048, 4096, 8192 or 16384", a.PageSize)
	}
	h.PageSize = a.PageSize
	if h.KernelAddr, err = addr32("kernel_offset", a.Base, a.KernelOffset); err != nil {
		return nil, err
	}
	if h.TagsAddr, err = addr32("tags_offset", a.Base, a.TagsOffset); err != nil {
		return nil, err
	}
	if partSize(a.Ramdisk) > 0 {
		if h.RamdiskAddr, err = addr32("ramdisk_offset", a.Base, a.RamdiskOffset); err != nil {
			return nil, err
		}
	}
	if partSize(a.Second) > 0 {
		if h.SecondAddr, err = addr32("second_offset", a.Base, a.SecondOffset); err != nil {
			return nil, err
		}
	}
	if len(a.Board) > nameSize || !a.Legacy && len(a.Board) > nameSize-1 {
		return nil, argErr("board name %q is too long for the %d-byte field", a.Board, nameSize)
	}
	h.Name = a.Board
	if err := splitCmdline(h, a.Cmdline, a.Legacy); err != nil {
		return nil, err
	}
	parts[SecSecond] = a.Second
	parts[SecDT] = a.DT
	if v >= 1 {
		parts[SecRecoveryDTBO] = a.RecoveryDTBO
		h.HeaderSize = bootV1Len
	}
	if v >= 2 {
		if partSize(a.DTB) == 0 {
			return nil, argErr("header version 2 needs a non-empty dtb")
		}
		parts[SecDTB] = a.DTB
		h.HeaderSize = bootV2Len
		h.DTBAddr = uint64(a.Base) + a.DTBOffset
	}
	as := &assembly{h: h, parts: parts, finish: func(h *Header, secs []Section) error {
		setRecoveryOffset(h, secs)
		id, err := computeID(h, parts, a.Legacy)
		h.ID = id
		return err
	}}
	return as.output()
}

// splitCmdline spreads a command line over cmdline and extra_cmdline as mkbootimg does: AOSP keeps
// 511 bytes and a terminator in the first field, Debian's older tool fills all 512.
func splitCmdline(h *Header, s string, legacy bool) error {
	cut := argsSize - 1
	max := argsSize + extraArgsSize - 2
	if legacy {
		cut, max = argsSize, argsSize+extraArgsSize
	}
	if len(s) > max {
		return argErr("command line is %d bytes, at most %d fit in header v0–v2", len(s), max)
	}
	h.Cmdline, h.ExtraCmdline = s, ""
	if len(s) > cut {
		h.Cmdline, h.ExtraCmdline = s[:cut], s[cut:]
	}
	return nil
}

func normOS(version, patch string) (string, string, error) {
	w, err := joinOSVersion(version, patch)
	if err != nil {
		return "", "", failure.Kinded(failure.ErrUsage, err)
	}
	v, p := splitOSVersion(w)
	return v, p, nil
}

func setRecoveryOffset(h *Header, secs []Section) {
	h.RecoveryDTBOOffset = 0
	for _, s := range secs {
		if s.Name == SecRecoveryDTBO && s.Size > 0 {
			h.RecoveryDTBOOffset = uint64(s.Offset)
		}
	}
}

// computeID is mkbootimg's image id: SHA-1 over each section's bytes followed by its size as a
// little-endian uint32 — kernel, ramdisk, second, dt (AOSP only), then recovery_dtbo (v1+) and dtb
// (v2+) — in the first 20 of 32 bytes.
func computeID(h *Header, parts map[string]image.Image, legacy bool) ([32]byte, error) {
	var id [32]byte
	names := []string{SecKernel, SecRamdisk, SecSecond}
	if !legacy {
		names = append(names, SecDT)
	}
	if h.HeaderVersion >= 1 {
		names = append(names, SecRecoveryDTBO)
	}
	if h.HeaderVersion >= 2 {
		names = append(names, SecDTB)
	}
	sum := sha1.New()
	for _, n := range names {
		p := parts[n]
		if p != nil {
			if _, err := io.CopyBuffer(sum, image.Reader(p), copyBuf(p.Size())); err != nil {
				return id, fmt.Errorf("bootimg: hashing %s for the image id: %w", n, err)
			}
		}
		var sz [4]byte
		binary.LittleEndian.PutUint32(sz[:], uint32(partSize(p)))
		sum.Write(sz[:])
	}
	copy(id[:], sum.Sum(nil))
	return id, nil
}

func buildVendor(a *Args) (*Output, error) {
	v := a.HeaderVersion
	if v != 3 && v != 4 {
		return nil, argErr("vendor_boot needs header version 3 or 4")
	}
	if v == 3 && a.VendorRamdisk == nil {
		return nil, argErr("vendor_boot v3 needs a vendor ramdisk")
	}
	if !validPageSize(a.PageSize) || a.PageSize > 16384 {
		return nil, argErr("page size %d: mkbootimg takes 2048, 4096, 8192 or 16384", a.PageSize)
	}
	h := &Header{Kind: KindVendorBoot, HeaderVersion: v, PageSize: a.PageSize}
	var err error
	if h.KernelAddr, err = addr32("kernel_offset", a.Base, a.KernelOffset); err != nil {
		return nil, err
	}
	if h.RamdiskAddr, err = addr32("ramdisk_offset", a.Base, a.RamdiskOffset); err != nil {
		return nil, err
	}
	if h.TagsAddr, err = addr32("tags_offset", a.Base, a.TagsOffset); err != nil {
		return nil, err
	}
	h.DTBAddr = uint64(a.Base) + a.DTBOffset
	maxCmd, maxName := vendorArgsSize-1, nameSize-1
	if a.Legacy {
		maxCmd, maxName = vendorArgsSize, nameSize
	}
	if len(a.VendorCmdline) > maxCmd {
		return nil, argErr("vendor command line is %d bytes, at most %d fit", len(a.VendorCmdline), maxCmd)
	}
	if len(a.Board) > maxName {
		return nil, argErr("board name %q is too long for the %d-byte field", a.Board, nameSize)
	}
	h.Cmdline, h.Name = a.VendorCmdline, a.Board
	parts := map[string]image.Image{SecDTB: a.DTB}
	if v == 3 {
		h.HeaderSize = vendorV3Len
		if a.Legacy {
			h.HeaderSize = 2108
		}
		parts[SecVendorRamdisk] = a.VendorRamdisk
		return (&assembly{h: h, parts: parts}).output()
	}
	h.HeaderSize = vendorV4Len
	h.VendorRamdiskTableEntrySize = tableEntrySizeV4
	frags := a.VendorRamdiskFragments
	if a.VendorRamdisk != nil {
		frags = append([]RamdiskFragment{{Type: RamdiskTypePlatform, Data: a.VendorRamdisk}}, frags...)
	}
	seen := map[string]bool{}
	var datas []image.Image
	for i, f := range frags {
		if i > 0 || a.VendorRamdisk == nil {
			if f.Name == "default" {
				return nil, argErr("vendor ramdisk name %q is reserved", f.Name)
			}
		}
		if seen[f.Name] {
			return nil, argErr("duplicate vendor ramdisk name %q", f.Name)
		}
		seen[f.Name] = true
		if len(f.Name) > ramdiskNameSize-1 {
			return nil, argErr("vendor ramdisk name %q is too long", f.Name)
		}
		d := f.Data
		if d == nil {
			d = image.Zero(0)
		}
		datas = append(datas, d)
		h.VendorRamdisks = append(h.VendorRamdisks, VendorRamdisk{Type: f.Type, Name: f.Name, BoardID: f.BoardID})
	}
	parts[SecVendorRamdisk] = ramdiskConcat(h, datas)
	tab, err := encodeTable(h, nil)
	if err != nil {
		return nil, err
	}
	parts[SecRamdiskTable] = bytesImage(tab)
	parts[SecBootconfig] = a.Bootconfig
	return (&assembly{h: h, parts: parts}).output()
}

// ramdiskConcat lays the vendor ramdisks end to end and records each entry's size and offset.
func ramdiskConcat(h *Header, datas []image.Image) image.Image {
	var off int64
	for i, d := range datas {
		h.VendorRamdisks[i].Size = uint32(d.Size())
		h.VendorRamdisks[i].Offset = uint32(off)
		off += d.Size()
	}
	return image.Concat(datas...)
}

// encodeTable writes the vendor ramdisk table from the entries (or returns raw when given), setting
// the entry count and entry size fields.
func encodeTable(h *Header, raw []byte) ([]byte, error) {
	if raw != nil {
		return raw, nil
	}
	if len(h.VendorRamdisks) == 0 {
		h.VendorRamdiskTableEntryNum = 0 // keep the entry size field as it is
		return nil, nil
	}
	var tab []byte
	es := tableEntrySizeV4
	for i := range h.VendorRamdisks {
		e, err := encodeTableEntry(&h.VendorRamdisks[i])
		if err != nil {
			return nil, err
		}
		if i == 0 {
			es = len(e)
		} else if len(e) != es {
			return nil, fmt.Errorf("bootimg: vendor ramdisk table entries differ in size")
		}
		tab = append(tab, e...)
	}
	h.VendorRamdiskTableEntryNum = uint32(len(h.VendorRamdisks))
	h.VendorRamdiskTableEntrySize = uint32(es)
	return tab, nil
}

func bytesImage(b []byte) image.Image { return image.New(bytes.NewReader(b), int64(len(b))) }

// assembly lays out a header and its parts into an Output.
type assembly struct {
	h       *Header
	parts   map[string]image.Image // by section name; missing = empty
	padding map[string][]byte      // non-zero padding to restore, by section
	short   int64                  // final padding bytes to leave out
	tail    image.Image            // bytes after the last section
	// finish runs after the size fields are set and sections placed, before the header is encoded.
	finish func(h *Header, secs []Section) error
}

func (a *assembly) output() (*Output, error) {
	h := a.h
	sz := func(name string) (uint32, error) {
		n := partSize(a.parts[name])
		if n > math.MaxUint32 {
			return 0, fmt.Errorf("bootimg: %s is %d bytes, more than a boot image header can describe", name, n)
		}
		return uint32(n), nil
	}
	var err error
	set := func(dst *uint32, name string) {
		if err == nil {
			*dst, err = sz(name)
		}
	}
	if h.Kind == KindVendorBoot {
		set(&h.RamdiskSize, SecVendorRamdisk)
		set(&h.DTBSize, SecDTB)
		if h.HeaderVersion >= 4 {
			set(&h.VendorRamdiskTableSize, SecRamdiskTable)
			set(&h.BootconfigSize, SecBootconfig)
		}
	} else {
		set(&h.KernelSize, SecKernel)
		set(&h.RamdiskSize, SecRamdisk)
		switch {
		case h.HeaderVersion >= 3:
			if h.HeaderVersion >= 4 {
				set(&h.SignatureSize, SecSignature)
			}
		default:
			set(&h.SecondSize, SecSecond)
			if h.HeaderVersion == 0 {
				set(&h.DTSize, SecDT)
				if err == nil && h.DTSize > 0 && h.DTSize <= 4 {
					err = fmt.Errorf("bootimg: a %d-byte dt image cannot be told from a header version", h.DTSize)
				}
			} else if partSize(a.parts[SecDT]) > 0 {
				err = fmt.Errorf("bootimg: a QCOM dt image needs header version 0")
			}
			if h.HeaderVersion >= 1 {
				set(&h.RecoveryDTBOSize, SecRecoveryDTBO)
			}
			if h.HeaderVersion >= 2 {
				set(&h.DTBSize, SecDTB)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	secs, _ := h.layout()
	if a.finish != nil {
		if err := a.finish(h, secs); err != nil {
			return nil, err
		}
	}
	hdr, err := h.encode()
	if err != nil {
		return nil, err
	}
	o := &Output{Header: h}
	o.addBytes(hdr)
	a.pad(o, "header", h.headerSpan()-int64(len(hdr)))
	page := h.pageSize()
	for _, s := range secs {
		if s.Size == 0 {
			continue
		}
		o.addReader(a.parts[s.Name], 0, s.Size)
		a.pad(o, s.Name, roundUp(s.Size, page)-s.Size)
	}
	o.truncate(a.short)
	if a.tail != nil {
		o.addReader(a.tail, 0, a.tail.Size())
	}
	return o, nil
}

func (a *assembly) pad(o *Output, name string, n int64) {
	if p, ok := a.padding[name]; ok && int64(len(p)) <= n {
		o.addBytes(p)
		o.addZeros(n - int64(len(p)))
		return
	}
	o.addZeros(n)
}
