package bootimg

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/romforge/romforge/internal/safeio"
)

// object is a JSON object that keeps its keys in the order given (spec order reads better than
// alphabetical in header.json and inspect output).
type object []kv

type kv struct {
	k string
	v any
}

func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// fields lists the header's fields for its kind and version, in bootimg.h order, with snake_case
// spec names. Strings whose bytes a plain string cannot carry also appear under "raw_fields".
func (h *Header) fields() object {
	o := object{{"format", h.Kind.String()}, {"magic", h.Magic()}}
	add := func(k string, v any) { o = append(o, kv{k, v}) }
	switch {
	case h.Kind == KindVendorBoot:
		add("header_version", h.HeaderVersion)
		add("page_size", h.PageSize)
		add("kernel_addr", h.KernelAddr)
		add("ramdisk_addr", h.RamdiskAddr)
		add("vendor_ramdisk_size", h.RamdiskSize)
		add("cmdline", h.Cmdline)
		add("tags_addr", h.TagsAddr)
		add("name", h.Name)
		add("header_size", h.HeaderSize)
		add("dtb_size", h.DTBSize)
		add("dtb_addr", h.DTBAddr)
		if h.HeaderVersion >= 4 {
			add("vendor_ramdisk_table_size", h.VendorRamdiskTableSize)
			add("vendor_ramdisk_table_entry_num", h.VendorRamdiskTableEntryNum)
			add("vendor_ramdisk_table_entry_size", h.VendorRamdiskTableEntrySize)
			add("bootconfig_size", h.BootconfigSize)
			entries := make([]object, 0, len(h.VendorRamdisks))
			for i := range h.VendorRamdisks {
				entries = append(entries, h.VendorRamdisks[i].fields(i))
			}
			add("vendor_ramdisk_table", entries)
		}
	case h.HeaderVersion >= 3:
		add("header_version", h.HeaderVersion)
		add("kernel_size", h.KernelSize)
		add("ramdisk_size", h.RamdiskSize)
		add("os_version", h.OSVersion)
		add("os_patch_level", h.OSPatchLevel)
		add("header_size", h.HeaderSize)
		add("reserved", h.Reserved)
		add("cmdline", h.Cmdline)
		if h.HeaderVersion >= 4 {
			add("signature_size", h.SignatureSize)
		}
		add("page_size", V3PageSize)
	default:
		add("header_version", h.HeaderVersion)
		add("kernel_size", h.KernelSize)
		add("kernel_addr", h.KernelAddr)
		add("ramdisk_size", h.RamdiskSize)
		add("ramdisk_addr", h.RamdiskAddr)
		add("second_size", h.SecondSize)
		add("second_addr", h.SecondAddr)
		add("tags_addr", h.TagsAddr)
		add("page_size", h.PageSize)
		if h.DTSize != 0 {
			add("dt_size", h.DTSize)
		}
		add("os_version", h.OSVersion)
		add("os_patch_level", h.OSPatchLevel)
		add("name", h.Name)
		add("cmdline", h.Cmdline)
		add("id", hex.EncodeToString(h.ID[:]))
		add("extra_cmdline", h.ExtraCmdline)
		if h.HeaderVersion >= 1 {
			add("recovery_dtbo_size", h.RecoveryDTBOSize)
			add("recovery_dtbo_offset", h.RecoveryDTBOOffset)
			add("header_size", h.HeaderSize)
		}
		if h.HeaderVersion >= 2 {
			add("dtb_size", h.DTBSize)
			add("dtb_addr", h.DTBAddr)
		}
	}
	raw := object{}
	for _, k := range []string{"name", "cmdline", "extra_cmdline"} {
		if b, ok := h.raw[k]; ok && !canonicalField(b) {
			raw = append(raw, kv{k, base64.StdEncoding.EncodeToString(b)})
		}
	}
	if len(raw) > 0 {
		add("raw_fields", raw)
	}
	return o
}

func (vr *VendorRamdisk) fields(i int) object {
	o := object{
		{"file", vendorRamdiskFile(i)},
		{"ramdisk_size", vr.Size},
		{"ramdisk_offset", vr.Offset},
		{"ramdisk_type", vr.Type},
		{"ramdisk_name", vr.Name},
		{"board_id", vr.BoardID},
	}
	if vr.rawName != nil && !canonicalField(vr.rawName) {
		o = append(o, kv{"raw_ramdisk_name", base64.StdEncoding.EncodeToString(vr.rawName)})
	}
	if len(vr.extra) > 0 {
		o = append(o, kv{"entry_extra", base64.StdEncoding.EncodeToString(vr.extra)})
	}
	return o
}

func vendorRamdiskFile(i int) string { return fmt.Sprintf("vendor_ramdisk%02d", i) }

// MarshalJSON writes the header's fields (see fields).
func (h *Header) MarshalJSON() ([]byte, error) { return h.fields().MarshalJSON() }

// jsonHeader is the decoding form of header.json's header fields.
type jsonHeader struct {
	Format        string `json:"format"`
	Magic         string `json:"magic"`
	HeaderVersion uint32 `json:"header_version"`

	KernelSize  uint32 `json:"kernel_size"`
	KernelAddr  uint32 `json:"kernel_addr"`
	RamdiskSize uint32 `json:"ramdisk_size"`
	RamdiskAddr uint32 `json:"ramdisk_addr"`
	SecondSize  uint32 `json:"second_size"`
	SecondAddr  uint32 `json:"second_addr"`
	TagsAddr    uint32 `json:"tags_addr"`
	PageSize    uint32 `json:"page_size"`
	DTSize      uint32 `json:"dt_size"`

	OSVersion    string `json:"os_version"`
	OSPatchLevel string `json:"os_patch_level"`
	Name         string `json:"name"`
	Cmdline      string `json:"cmdline"`
	ID           string `json:"id"`
	ExtraCmdline string `json:"extra_cmdline"`

	RecoveryDTBOSize   uint32    `json:"recovery_dtbo_size"`
	RecoveryDTBOOffset uint64    `json:"recovery_dtbo_offset"`
	HeaderSize         uint32    `json:"header_size"`
	DTBSize            uint32    `json:"dtb_size"`
	DTBAddr            uint64    `json:"dtb_addr"`
	Reserved           [4]uint32 `json:"reserved"`
	SignatureSize      uint32    `json:"signature_size"`

	VendorRamdiskSize           uint32 `json:"vendor_ramdisk_size"`
	VendorRamdiskTableSize      uint32 `json:"vendor_ramdisk_table_size"`
	VendorRamdiskTableEntryNum  uint32 `json:"vendor_ramdisk_table_entry_num"`
	VendorRamdiskTableEntrySize uint32 `json:"vendor_ramdisk_table_entry_size"`
	BootconfigSize              uint32 `json:"bootconfig_size"`
	VendorRamdiskTable          []struct {
		File           string               `json:"file"`
		Size           uint32               `json:"ramdisk_size"`
		Offset         uint32               `json:"ramdisk_offset"`
		Type           uint32               `json:"ramdisk_type"`
		Name           string               `json:"ramdisk_name"`
		BoardID        [boardIDWords]uint32 `json:"board_id"`
		RawRamdiskName string               `json:"raw_ramdisk_name"`
		EntryExtra     string               `json:"entry_extra"`
	} `json:"vendor_ramdisk_table"`

	RawFields map[string]string `json:"raw_fields"`
}

// sameInJSON reports whether two strings serialise to the same JSON (invalid UTF-8 becomes U+FFFD),
// so a string read back from header.json can be matched to the raw bytes it was written from.
func sameInJSON(decoded, raw string) bool {
	j, err := json.Marshal(raw)
	if err != nil {
		return false
	}
	var back string
	return json.Unmarshal(j, &back) == nil && back == decoded
}

// UnmarshalJSON reads the header fields written by MarshalJSON (unknown keys are ignored).
func (h *Header) UnmarshalJSON(data []byte) error {
	var j jsonHeader
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*h = Header{}
	switch {
	case j.Format == "vendor_boot" || j.Magic == VendorBootMagic:
		h.Kind = KindVendorBoot
	case j.Format == "boot" || j.Format == "" && (j.Magic == BootMagic || j.Magic == ""):
		h.Kind = KindBoot
	default:
		return fmt.Errorf("bootimg: header.json format %q / magic %q is not boot or vendor_boot", j.Format, j.Magic)
	}
	h.HeaderVersion = j.HeaderVersion
	h.KernelSize, h.KernelAddr = j.KernelSize, j.KernelAddr
	h.RamdiskSize, h.RamdiskAddr = j.RamdiskSize, j.RamdiskAddr
	if h.Kind == KindVendorBoot {
		h.RamdiskSize = j.VendorRamdiskSize
	}
	h.SecondSize, h.SecondAddr = j.SecondSize, j.SecondAddr
	h.TagsAddr, h.PageSize, h.DTSize = j.TagsAddr, j.PageSize, j.DTSize
	h.OSVersion, h.OSPatchLevel = j.OSVersion, j.OSPatchLevel
	h.Name, h.Cmdline, h.ExtraCmdline = j.Name, j.Cmdline, j.ExtraCmdline
	if j.ID != "" {
		id, err := hex.DecodeString(j.ID)
		if err != nil || len(id) != len(h.ID) {
			return fmt.Errorf("bootimg: header.json id %q: want %d hex digits", j.ID, 2*len(h.ID))
		}
		copy(h.ID[:], id)
	}
	h.RecoveryDTBOSize, h.RecoveryDTBOOffset, h.HeaderSize = j.RecoveryDTBOSize, j.RecoveryDTBOOffset, j.HeaderSize
	h.DTBSize, h.DTBAddr, h.Reserved, h.SignatureSize = j.DTBSize, j.DTBAddr, j.Reserved, j.SignatureSize
	h.VendorRamdiskTableSize = j.VendorRamdiskTableSize
	h.VendorRamdiskTableEntryNum = j.VendorRamdiskTableEntryNum
	h.VendorRamdiskTableEntrySize = j.VendorRamdiskTableEntrySize
	h.BootconfigSize = j.BootconfigSize
	for k, v := range j.RawFields {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return fmt.Errorf("bootimg: header.json raw_fields.%s: %v", k, err)
		}
		var s *string
		switch k {
		case "name":
			s = &h.Name
		case "cmdline":
			s = &h.Cmdline
		case "extra_cmdline":
			s = &h.ExtraCmdline
		default:
			continue
		}
		h.setRaw(k, b)
		if sameInJSON(*s, safeio.CString(b)) {
			*s = safeio.CString(b)
		}
	}
	for i, e := range j.VendorRamdiskTable {
		vr := VendorRamdisk{Size: e.Size, Offset: e.Offset, Type: e.Type, Name: e.Name, BoardID: e.BoardID}
		if e.RawRamdiskName != "" {
			b, err := base64.StdEncoding.DecodeString(e.RawRamdiskName)
			if err != nil {
				return fmt.Errorf("bootimg: header.json vendor ramdisk %d raw_ramdisk_name: %v", i, err)
			}
			vr.rawName = b
			if sameInJSON(vr.Name, safeio.CString(b)) {
				vr.Name = safeio.CString(b)
			}
		}
		if e.EntryExtra != "" {
			b, err := base64.StdEncoding.DecodeString(e.EntryExtra)
			if err != nil {
				return fmt.Errorf("bootimg: header.json vendor ramdisk %d entry_extra: %v", i, err)
			}
			vr.extra = b
		}
		h.VendorRamdisks = append(h.VendorRamdisks, vr)
	}
	return nil
}

// vendorRamdiskFiles returns the file name of each vendor ramdisk entry in header.json (default
// vendor_ramdiskNN, as Unpack and AOSP unpack_bootimg name them).
func vendorRamdiskFiles(data []byte) []string {
	var j jsonHeader
	_ = json.Unmarshal(data, &j)
	names := make([]string, len(j.VendorRamdiskTable))
	for i, e := range j.VendorRamdiskTable {
		names[i] = e.File
		if names[i] == "" {
			names[i] = vendorRamdiskFile(i)
		}
	}
	return names
}
