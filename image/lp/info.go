package lp

import "reflect"

// Info is the JSON-able summary `romforge inspect` prints for a super image (slot 0, plus which other
// slots differ from it).
type Info struct {
	MetadataVersion   string          `json:"metadata_version"`
	MetadataOnly      bool            `json:"metadata_only"`
	MetadataMaxSize   uint32          `json:"metadata_max_size"`
	MetadataSlotCount uint32          `json:"metadata_slot_count"`
	LogicalBlockSize  uint32          `json:"logical_block_size"`
	HeaderFlags       []string        `json:"header_flags"`
	Slots             int             `json:"slots"`
	DifferingSlots    []int           `json:"differing_slots,omitempty"`
	BlockDevices      []BlockDevice   `json:"block_devices"`
	Groups            []Group         `json:"groups"`
	Partitions        []PartitionInfo `json:"partitions"`
	Problems          []string        `json:"problems,omitempty"`
}

// PartitionInfo is one logical partition in Info.
type PartitionInfo struct {
	Name       string       `json:"name"`
	Group      string       `json:"group_name"`
	Attributes []string     `json:"attributes"`
	Size       uint64       `json:"size"`
	Extents    []ExtentInfo `json:"extents"`
}

// ExtentInfo is one extent in Info, with its target spelled out.
type ExtentInfo struct {
	LogicalSector uint64 `json:"logical_sector"`
	NumSectors    uint64 `json:"num_sectors"`
	TargetType    string `json:"target_type"`
	// PhysicalSector and BlockDevice are set for linear extents.
	PhysicalSector uint64 `json:"physical_sector,omitempty"`
	BlockDevice    string `json:"block_device,omitempty"`
}

// Info summarises the image for inspect.
func (s *Super) Info() Info {
	m := s.slots[0]
	in := Info{
		MetadataVersion: m.Version(), MetadataOnly: s.empty,
		MetadataMaxSize: s.geometry.MetadataMaxSize, MetadataSlotCount: s.geometry.MetadataSlotCount,
		LogicalBlockSize: s.geometry.LogicalBlockSize, HeaderFlags: HeaderFlagNames(m.HeaderFlags),
		Slots: len(s.slots), BlockDevices: m.BlockDevices, Groups: m.Groups, Problems: s.problems,
	}
	if in.HeaderFlags == nil {
		in.HeaderFlags = []string{}
	}
	for i := 1; i < len(s.slots); i++ {
		if !reflect.DeepEqual(s.slots[i], m) {
			in.DifferingSlots = append(in.DifferingSlots, i)
		}
	}
	for _, p := range m.Partitions {
		pi := PartitionInfo{Name: p.Name, Group: p.Group, Attributes: AttributeNames(p.Attributes), Size: p.Size, Extents: []ExtentInfo{}}
		if pi.Attributes == nil {
			pi.Attributes = []string{}
		}
		var logical uint64
		for _, x := range p.Extents {
			e := ExtentInfo{LogicalSector: logical, NumSectors: x.NumSectors, TargetType: "zero"}
			if x.TargetType == TargetLinear {
				e.TargetType, e.PhysicalSector, e.BlockDevice = "linear", x.TargetData, m.BlockDevices[x.TargetSource].PartitionName
			}
			logical += x.NumSectors
			pi.Extents = append(pi.Extents, e)
		}
		in.Partitions = append(in.Partitions, pi)
	}
	return in
}
