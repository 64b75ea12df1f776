package bootimg

// Section names, also the file names Unpack writes (the same names AOSP unpack_bootimg uses).
const (
	SecKernel        = "kernel"
	SecRamdisk       = "ramdisk"
	SecSecond        = "second"
	SecDT            = "dt"
	SecRecoveryDTBO  = "recovery_dtbo"
	SecDTB           = "dtb"
	SecSignature     = "boot_signature"
	SecVendorRamdisk = "vendor_ramdisk"
	SecRamdiskTable  = "vendor_ramdisk_table"
	SecBootconfig    = "bootconfig"
)

// Section is one part of the image: its name, where its bytes start and how many there are. Each
// section starts on a page boundary and is zero-padded to the next one.
type Section struct {
	Name   string `json:"name"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
}

func roundUp(n, page int64) int64 { return (n + page - 1) / page * page }

// headerPages is the space the header occupies: one page for boot images; for vendor_boot the
// header_size rounded up to pages (as AOSP reads it), never less than the structure itself.
func (h *Header) headerSpan() int64 {
	page := h.pageSize()
	if h.Kind == KindBoot {
		return page
	}
	n := max(int64(h.HeaderSize), int64(h.headerLen()))
	return roundUp(n, page)
}

// layout places the sections mkbootimg writes for the header's kind, version and sizes, in file order,
// including empty ones, and returns the end of the last section's padding.
func (h *Header) layout() ([]Section, int64) {
	page := h.pageSize()
	off := h.headerSpan()
	var secs []Section
	add := func(name string, size uint32) {
		secs = append(secs, Section{Name: name, Offset: off, Size: int64(size)})
		off += roundUp(int64(size), page)
	}
	switch {
	case h.Kind == KindVendorBoot:
		add(SecVendorRamdisk, h.RamdiskSize)
		add(SecDTB, h.DTBSize)
		if h.HeaderVersion >= 4 {
			add(SecRamdiskTable, h.VendorRamdiskTableSize)
			add(SecBootconfig, h.BootconfigSize)
		}
	case h.HeaderVersion >= 3:
		add(SecKernel, h.KernelSize)
		add(SecRamdisk, h.RamdiskSize)
		if h.HeaderVersion >= 4 {
			add(SecSignature, h.SignatureSize)
		}
	default:
		add(SecKernel, h.KernelSize)
		add(SecRamdisk, h.RamdiskSize)
		add(SecSecond, h.SecondSize)
		if h.HeaderVersion == 0 {
			add(SecDT, h.DTSize)
		}
		if h.HeaderVersion >= 1 {
			add(SecRecoveryDTBO, h.RecoveryDTBOSize)
		}
		if h.HeaderVersion >= 2 {
			add(SecDTB, h.DTBSize)
		}
	}
	return secs, off
}

// sectionNames lists the sections an image of this kind and version can have, in file order.
func (h *Header) sectionNames() []string {
	secs, _ := h.layout()
	names := make([]string, len(secs))
	for i, s := range secs {
		names[i] = s.Name
	}
	return names
}
