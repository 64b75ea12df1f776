package lp

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math"
	"slices"

	"github.com/romforge/romforge/internal/safeio"
)

// Metadata is one slot's partition table.
type Metadata struct {
	Geometry     Geometry      `json:"geometry"`
	MajorVersion uint16        `json:"major_version"`
	MinorVersion uint16        `json:"minor_version"`
	HeaderFlags  uint32        `json:"flags"`
	Partitions   []Partition   `json:"partitions"`
	Groups       []Group       `json:"groups"`
	BlockDevices []BlockDevice `json:"block_devices"`
}

// Partition is a logical partition and its extents, in order.
type Partition struct {
	Name       string   `json:"name"`
	Attributes uint32   `json:"attributes"`
	GroupIndex uint32   `json:"group_index"`
	Group      string   `json:"group_name"`
	Extents    []Extent `json:"extents"`
	// Size in bytes (the sum of the extents).
	Size uint64 `json:"size"`
}

// Extent maps NumSectors sectors of a partition: LINEAR onto block device TargetSource starting at sector
// TargetData, or ZERO (reads as zeros).
type Extent struct {
	NumSectors   uint64 `json:"num_sectors"`
	TargetType   uint32 `json:"target_type"`
	TargetData   uint64 `json:"target_data"`
	TargetSource uint32 `json:"target_source"`
}

// Group is a partition group; MaximumSize 0 means unlimited.
type Group struct {
	Name        string `json:"name"`
	Flags       uint32 `json:"flags"`
	MaximumSize uint64 `json:"maximum_size"`
}

// BlockDevice is a physical partition the logical partitions live on; index 0 is the super device
// holding the metadata.
type BlockDevice struct {
	FirstLogicalSector uint64 `json:"first_logical_sector"`
	Alignment          uint32 `json:"alignment"`
	AlignmentOffset    uint32 `json:"alignment_offset"`
	Size               uint64 `json:"size"`
	PartitionName      string `json:"partition_name"`
	Flags              uint32 `json:"flags"`
}

// Version returns "10.N".
func (m *Metadata) Version() string { return fmt.Sprintf("%d.%d", m.MajorVersion, m.MinorVersion) }

// Partition returns the named partition.
func (m *Metadata) Partition(name string) (*Partition, bool) {
	for i := range m.Partitions {
		if m.Partitions[i].Name == name {
			return &m.Partitions[i], true
		}
	}
	return nil, false
}

// AttributeNames spells attributes as lpdump does ("readonly", "slot-suffixed", "updated", "disabled").
func AttributeNames(a uint32) []string {
	var out []string
	for _, f := range []struct {
		bit  uint32
		name string
	}{{AttrReadonly, "readonly"}, {AttrSlotSuffixed, "slot-suffixed"}, {AttrUpdated, "updated"}, {AttrDisabled, "disabled"}} {
		if a&f.bit != 0 {
			out = append(out, f.name)
		}
	}
	return out
}

func headerSize(minor uint16) int {
	if minor >= versionForExpandedHeader {
		return headerSizeV1_2
	}
	return headerSizeV1_0
}

// Marshal serialises the metadata (header followed by the tables) as liblp does: partitions in order,
// their extents concatenated in partition order, then groups and block devices. Groups are referred to by
// GroupIndex; Partition.Group is ignored.
func (m *Metadata) Marshal() ([]byte, error) {
	hs := headerSize(m.MinorVersion)
	var tables []byte
	var extents []byte
	nExt := 0
	partTab := make([]byte, 0, len(m.Partitions)*partitionEntrySize)
	for _, p := range m.Partitions {
		if len(p.Name) > nameLen {
			return nil, fmt.Errorf("lp: partition name %q is longer than %d bytes", p.Name, nameLen)
		}
		e := make([]byte, partitionEntrySize)
		putName(e, p.Name)
		le.PutUint32(e[36:], p.Attributes)
		le.PutUint32(e[40:], uint32(nExt))
		le.PutUint32(e[44:], uint32(len(p.Extents)))
		le.PutUint32(e[48:], p.GroupIndex)
		partTab = append(partTab, e...)
		for _, x := range p.Extents {
			b := make([]byte, extentEntrySize)
			le.PutUint64(b[0:], x.NumSectors)
			le.PutUint32(b[8:], x.TargetType)
			le.PutUint64(b[12:], x.TargetData)
			le.PutUint32(b[20:], x.TargetSource)
			extents = append(extents, b...)
			nExt++
		}
	}
	var groups []byte
	for _, g := range m.Groups {
		if len(g.Name) > nameLen {
			return nil, fmt.Errorf("lp: group name %q is longer than %d bytes", g.Name, nameLen)
		}
		b := make([]byte, groupEntrySize)
		putName(b, g.Name)
		le.PutUint32(b[36:], g.Flags)
		le.PutUint64(b[40:], g.MaximumSize)
		groups = append(groups, b...)
	}
	var devs []byte
	for _, d := range m.BlockDevices {
		if len(d.PartitionName) > nameLen {
			return nil, fmt.Errorf("lp: block device name %q is longer than %d bytes", d.PartitionName, nameLen)
		}
		b := make([]byte, blockDevEntrySize)
		le.PutUint64(b[0:], d.FirstLogicalSector)
		le.PutUint32(b[8:], d.Alignment)
		le.PutUint32(b[12:], d.AlignmentOffset)
		le.PutUint64(b[16:], d.Size)
		putName(b[24:], d.PartitionName)
		le.PutUint32(b[60:], d.Flags)
		devs = append(devs, b...)
	}
	tables = append(tables, partTab...)
	tables = append(tables, extents...)
	tables = append(tables, groups...)
	tables = append(tables, devs...)

	h := make([]byte, hs)
	le.PutUint32(h[0:], HeaderMagic)
	le.PutUint16(h[4:], m.MajorVersion)
	le.PutUint16(h[6:], m.MinorVersion)
	le.PutUint32(h[8:], uint32(hs))
	le.PutUint32(h[44:], uint32(len(tables)))
	tsum := sha256.Sum256(tables)
	copy(h[48:80], tsum[:])
	putDesc := func(at int, off, n, size int) {
		le.PutUint32(h[at:], uint32(off))
		le.PutUint32(h[at+4:], uint32(n))
		le.PutUint32(h[at+8:], uint32(size))
	}
	putDesc(80, 0, len(m.Partitions), partitionEntrySize)
	putDesc(92, len(partTab), nExt, extentEntrySize)
	putDesc(104, len(partTab)+len(extents), len(m.Groups), groupEntrySize)
	putDesc(116, len(partTab)+len(extents)+len(groups), len(m.BlockDevices), blockDevEntrySize)
	if hs >= headerSizeV1_2 {
		le.PutUint32(h[128:], m.HeaderFlags)
	}
	hsum := sha256.Sum256(h)
	copy(h[12:44], hsum[:])
	out := append(h, tables...)
	if m.Geometry.MetadataMaxSize != 0 && len(out) > int(m.Geometry.MetadataMaxSize) {
		return nil, fmt.Errorf("lp: metadata is %d bytes, more than the metadata max size %d: raise the metadata size", len(out), m.Geometry.MetadataMaxSize)
	}
	return out, nil
}

type tableDesc struct{ offset, num, entrySize uint32 }

// parseMetadata decodes and validates one metadata copy. b holds the bytes available at off (at most
// the geometry's metadata max size). Every count, index and size is checked before use.
func parseMetadata(b []byte, off int64, g Geometry) (*Metadata, error) {
	what := "metadata header"
	if len(b) < headerSizeV1_0 {
		return nil, formatErr(off, what, "truncated (%d bytes)", len(b))
	}
	if m := le.Uint32(b); m != HeaderMagic {
		return nil, formatErr(off, what, "bad magic %#08x (want %#08x)", m, HeaderMagic)
	}
	m := &Metadata{Geometry: g, MajorVersion: le.Uint16(b[4:]), MinorVersion: le.Uint16(b[6:])}
	if m.MajorVersion != MajorVersion || m.MinorVersion > MinorVersionMax {
		return nil, formatErr(off, what, "unsupported metadata version %s (romforge reads 10.0 to 10.%d)", m.Version(), MinorVersionMax)
	}
	hs := headerSize(m.MinorVersion)
	if got := le.Uint32(b[8:]); got != uint32(hs) {
		return nil, formatErr(off, what, "header size %d, version %s needs %d", got, m.Version(), hs)
	}
	if len(b) < hs {
		return nil, formatErr(off, what, "truncated (%d of %d bytes)", len(b), hs)
	}
	h := bytes.Clone(b[:hs])
	clear(h[12:44])
	if sum := sha256.Sum256(h); !bytes.Equal(sum[:], b[12:44]) {
		return nil, formatErr(off, what, "header SHA-256 checksum mismatch")
	}
	if hs >= headerSizeV1_2 {
		m.HeaderFlags = le.Uint32(b[128:])
	}
	tablesSize := le.Uint32(b[44:])
	if uint64(tablesSize)+uint64(hs) > uint64(g.MetadataMaxSize) {
		return nil, formatErr(off, what, "tables size %d does not fit the metadata max size %d", tablesSize, g.MetadataMaxSize)
	}
	if uint64(len(b)) < uint64(hs)+uint64(tablesSize) {
		return nil, formatErr(off, what, "tables truncated: need %d bytes, file has %d", uint64(hs)+uint64(tablesSize), len(b))
	}
	tables := b[hs : hs+int(tablesSize)]
	if sum := sha256.Sum256(tables); !bytes.Equal(sum[:], b[48:80]) {
		return nil, formatErr(off, "metadata tables", "SHA-256 checksum mismatch")
	}
	desc := func(at int, name string, entry uint32) (tableDesc, error) {
		d := tableDesc{le.Uint32(b[at:]), le.Uint32(b[at+4:]), le.Uint32(b[at+8:])}
		if d.entrySize != entry {
			return d, formatErr(off, what, "%s table entry size %d, want %d", name, d.entrySize, entry)
		}
		if d.offset > tablesSize || uint64(d.num)*uint64(d.entrySize) > uint64(tablesSize-d.offset) {
			return d, formatErr(off, what, "%s table (%d entries at %d) outside the %d-byte tables", name, d.num, d.offset, tablesSize)
		}
		return d, nil
	}
	pd, err := desc(80, "partition", partitionEntrySize)
	if err != nil {
		return nil, err
	}
	ed, err := desc(92, "extent", extentEntrySize)
	if err != nil {
		return nil, err
	}
	gd, err := desc(104, "group", groupEntrySize)
	if err != nil {
		return nil, err
	}
	bd, err := desc(116, "block device", blockDevEntrySize)
	if err != nil {
		return nil, err
	}
	tabOff := off + int64(hs)
	entry := func(d tableDesc, i uint32) []byte {
		s := d.offset + i*d.entrySize
		return tables[s : s+d.entrySize]
	}
	// Counts are bounded by tablesSize ≤ metadata max size, so these allocations are bounded too.
	for i := uint32(0); i < bd.num; i++ {
		e := entry(bd, i)
		m.BlockDevices = append(m.BlockDevices, BlockDevice{
			FirstLogicalSector: le.Uint64(e[0:]), Alignment: le.Uint32(e[8:]), AlignmentOffset: le.Uint32(e[12:]),
			Size: le.Uint64(e[16:]), PartitionName: safeio.CString(e[24:60]), Flags: le.Uint32(e[60:]),
		})
	}
	if len(m.BlockDevices) == 0 {
		return nil, formatErr(off, what, "no block devices: the metadata names no super device")
	}
	for i, d := range m.BlockDevices {
		where := int64(bd.offset) + int64(i)*blockDevEntrySize + tabOff
		if d.FirstLogicalSector > math.MaxUint64/SectorSize || (d.FirstLogicalSector+1)*SectorSize > d.Size {
			return nil, formatErr(where, "block device "+d.PartitionName, "first logical sector %d leaves no room in %d bytes", d.FirstLogicalSector, d.Size)
		}
		if d.Size > math.MaxInt64 {
			return nil, formatErr(where, "block device "+d.PartitionName, "size %d is too large", d.Size)
		}
	}
	if total := g.TotalMetadataSize(); total > m.BlockDevices[0].FirstLogicalSector*SectorSize {
		return nil, formatErr(tabOff+int64(bd.offset), "block device "+m.BlockDevices[0].PartitionName,
			"metadata area (%d bytes) overlaps the logical partitions starting at sector %d", total, m.BlockDevices[0].FirstLogicalSector)
	}
	for i := uint32(0); i < gd.num; i++ {
		e := entry(gd, i)
		m.Groups = append(m.Groups, Group{Name: safeio.CString(e[:36]), Flags: le.Uint32(e[36:]), MaximumSize: le.Uint64(e[40:])})
	}
	var allExt []Extent
	for i := uint32(0); i < ed.num; i++ {
		e := entry(ed, i)
		x := Extent{NumSectors: le.Uint64(e[0:]), TargetType: le.Uint32(e[8:]), TargetData: le.Uint64(e[12:]), TargetSource: le.Uint32(e[20:])}
		where := tabOff + int64(ed.offset) + int64(i)*extentEntrySize
		switch x.TargetType {
		case TargetLinear:
			if x.TargetSource >= bd.num {
				return nil, formatErr(where, fmt.Sprintf("extent %d", i), "block device index %d out of range (%d devices)", x.TargetSource, bd.num)
			}
			dev := m.BlockDevices[x.TargetSource]
			last := dev.Size / SectorSize
			if x.TargetData < dev.FirstLogicalSector || x.TargetData > last || x.NumSectors > last-x.TargetData {
				return nil, formatErr(where, fmt.Sprintf("extent %d", i), "sectors %d+%d outside block device %s (sectors %d..%d)",
					x.TargetData, x.NumSectors, dev.PartitionName, dev.FirstLogicalSector, last)
			}
		case TargetZero:
			if x.NumSectors > math.MaxInt64/SectorSize {
				return nil, formatErr(where, fmt.Sprintf("extent %d", i), "zero extent of %d sectors is too large", x.NumSectors)
			}
		default:
			return nil, formatErr(where, fmt.Sprintf("extent %d", i), "unknown target type %d", x.TargetType)
		}
		allExt = append(allExt, x)
	}
	valid := uint32(attrMaskV0)
	if m.MinorVersion >= versionForUpdatedAttr {
		valid |= attrMaskV1
	}
	for i := uint32(0); i < pd.num; i++ {
		e := entry(pd, i)
		where := tabOff + int64(pd.offset) + int64(i)*partitionEntrySize
		p := Partition{Name: safeio.CString(e[:36]), Attributes: le.Uint32(e[36:]), GroupIndex: le.Uint32(e[48:])}
		first, n := le.Uint32(e[40:]), le.Uint32(e[44:])
		what := fmt.Sprintf("partition %d (%s)", i, p.Name)
		if p.Name == "" {
			return nil, formatErr(where, what, "empty name")
		}
		if p.Attributes&^valid != 0 {
			return nil, formatErr(where, what, "attributes %#x not valid in metadata %s", p.Attributes, m.Version())
		}
		if uint64(first)+uint64(n) > uint64(ed.num) {
			return nil, formatErr(where, what, "extents %d+%d beyond the %d-entry extent table", first, n, ed.num)
		}
		if p.GroupIndex >= gd.num {
			return nil, formatErr(where, what, "group index %d out of range (%d groups)", p.GroupIndex, gd.num)
		}
		p.Group = m.Groups[p.GroupIndex].Name
		p.Extents = allExt[first : first+n : first+n]
		for _, x := range p.Extents {
			if p.Size+x.NumSectors*SectorSize < p.Size || x.NumSectors > math.MaxInt64/SectorSize || p.Size+x.NumSectors*SectorSize > math.MaxInt64 {
				return nil, formatErr(where, what, "size overflows")
			}
			p.Size += x.NumSectors * SectorSize
		}
		for _, q := range m.Partitions {
			if q.Name == p.Name {
				return nil, formatErr(where, what, "duplicate partition name")
			}
		}
		m.Partitions = append(m.Partitions, p)
	}
	if err := checkOverlaps(m); err != nil {
		return nil, formatErr(off, "metadata", "%v", err)
	}
	return m, nil
}

// checkOverlaps refuses two linear extents sharing a sector, which would make writes to one partition
// corrupt another.
func checkOverlaps(m *Metadata) error {
	type span struct {
		dev        uint32
		start, end uint64
		part       string
	}
	var spans []span
	for _, p := range m.Partitions {
		for _, x := range p.Extents {
			if x.TargetType == TargetLinear && x.NumSectors > 0 {
				spans = append(spans, span{x.TargetSource, x.TargetData, x.TargetData + x.NumSectors, p.Name})
			}
		}
	}
	sortSpans := func(a, b span) int {
		if a.dev != b.dev {
			return int(a.dev) - int(b.dev)
		}
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	}
	slices.SortFunc(spans, sortSpans)
	for i := 1; i < len(spans); i++ {
		a, b := spans[i-1], spans[i]
		if a.dev == b.dev && b.start < a.end {
			return fmt.Errorf("extents of %s (sectors %d..%d) and %s (sectors %d..%d) overlap on block device %d",
				a.part, a.start, a.end, b.part, b.start, b.end, a.dev)
		}
	}
	return nil
}

// HeaderFlagNames spells header flags as lpdump does.
func HeaderFlagNames(f uint32) []string {
	var out []string
	if f&HeaderFlagVirtualAB != 0 {
		out = append(out, "virtual_ab_device")
		f &^= HeaderFlagVirtualAB
	}
	for i := 0; i < 32; i++ {
		if f&(1<<i) != 0 {
			out = append(out, fmt.Sprintf("unknown_flag_bit_%d", i))
		}
	}
	return out
}
