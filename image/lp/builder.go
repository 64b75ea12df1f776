package lp

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/progress"
)

// BuildSpec describes a super image to build, with the same knobs as lpmake.
type BuildSpec struct {
	// DeviceSize is the size of the super block device in bytes (a multiple of BlockSize).
	DeviceSize int64
	// MetadataMaxSize is the space reserved for one metadata copy (default 65536; rounded up to 512).
	MetadataMaxSize uint32
	// MetadataSlots is the number of metadata slots (default 2; Virtual A/B devices use 3).
	MetadataSlots uint32
	// BlockDeviceName is the super partition's name (default "super").
	BlockDeviceName string
	// BlockSize is the logical block size (default 4096).
	BlockSize uint32
	// Alignment of partition extents in bytes (default 1 MiB, as lpmake) and its offset.
	Alignment       uint32
	AlignmentOffset uint32
	// VirtualAB sets the v10.2 header flag for Virtual A/B devices.
	VirtualAB bool
	// AutoSlotSuffixing marks the block device, groups and partitions as needing slot suffixes (retrofit).
	AutoSlotSuffixing bool
	Groups            []GroupSpec
	Partitions        []PartitionSpec
	// Progress reports bytes of partition contents written (nil: none).
	Progress progress.Reporter
}

// GroupSpec is a partition group; MaximumSize 0 is unlimited.
type GroupSpec struct {
	Name        string
	MaximumSize uint64
}

// PartitionSpec is one logical partition.
type PartitionSpec struct {
	Name string
	// Group defaults to "default".
	Group string
	// Attributes, e.g. AttrReadonly.
	Attributes uint32
	// Size to reserve in bytes; 0 means the image's size. Rounded up to the block size.
	Size int64
	// Image is the initial contents (nil: none; the partition reads as zeros in a raw image).
	Image image.Image
}

// WithSlotSuffixes returns an A/B form of s: every group G becomes G_a and G_b, every partition P
// becomes P_a (with P's size and contents) followed, after all _a partitions, by an empty P_b — the
// layout of a freshly built Virtual A/B super.
func (s BuildSpec) WithSlotSuffixes() BuildSpec {
	out := s
	out.Groups, out.Partitions = nil, nil
	for _, sfx := range []string{"_a", "_b"} {
		for _, g := range s.Groups {
			out.Groups = append(out.Groups, GroupSpec{Name: g.Name + sfx, MaximumSize: g.MaximumSize})
		}
	}
	suffixGroup := func(g, sfx string) string {
		if g == "" || g == "default" {
			return g
		}
		return g + sfx
	}
	for _, p := range s.Partitions {
		q := p
		q.Name, q.Group = p.Name+"_a", suffixGroup(p.Group, "_a")
		out.Partitions = append(out.Partitions, q)
	}
	for _, p := range s.Partitions {
		out.Partitions = append(out.Partitions, PartitionSpec{Name: p.Name + "_b", Group: suffixGroup(p.Group, "_b"), Attributes: p.Attributes})
	}
	return out
}

func specErr(format string, args ...any) error {
	return failure.Kinded(failure.ErrUsage, fmt.Errorf("lp: "+format, args...))
}

func alignTo(base uint64, alignment uint32) uint64 {
	if alignment == 0 {
		return base
	}
	if r := base % uint64(alignment); r != 0 {
		return base + uint64(alignment) - r
	}
	return base
}

// alignToOffset aligns base so that base-offset is a multiple of alignment (liblp's rule, which never
// goes below base).
func alignToOffset(base uint64, alignment, offset uint32) uint64 {
	aligned := alignTo(base, alignment) + uint64(offset)
	if aligned-uint64(alignment) >= base {
		return aligned - uint64(alignment)
	}
	return aligned
}

func (s *BuildSpec) defaults() {
	if s.MetadataMaxSize == 0 {
		s.MetadataMaxSize = 65536
	}
	if s.MetadataSlots == 0 {
		s.MetadataSlots = 2
	}
	if s.BlockDeviceName == "" {
		s.BlockDeviceName = "super"
	}
	if s.BlockSize == 0 {
		s.BlockSize = 4096
	}
	if s.Alignment == 0 {
		s.Alignment = DefaultAlignment
	}
}

// Layout computes the metadata Build would write: lpmake's geometry, first logical sector and first-fit
// allocation in partition order.
func Layout(spec BuildSpec) (*Metadata, error) {
	spec.defaults()
	bs := spec.BlockSize
	switch {
	case spec.DeviceSize <= 0:
		return nil, specErr("device size %d must be positive", spec.DeviceSize)
	case bs%SectorSize != 0:
		return nil, specErr("block size %d is not a multiple of %d", bs, SectorSize)
	case spec.DeviceSize%int64(bs) != 0:
		return nil, specErr("device size %d is not a multiple of the block size %d", spec.DeviceSize, bs)
	case spec.Alignment%SectorSize != 0 || spec.AlignmentOffset%SectorSize != 0:
		return nil, specErr("alignment %d and offset %d must be multiples of %d", spec.Alignment, spec.AlignmentOffset, SectorSize)
	case spec.AlignmentOffset > spec.Alignment:
		return nil, specErr("alignment offset %d is greater than the alignment %d", spec.AlignmentOffset, spec.Alignment)
	case spec.MetadataMaxSize < headerSizeV1_2:
		return nil, specErr("metadata size %d is too small", spec.MetadataMaxSize)
	case spec.MetadataSlots > maxSlots:
		return nil, specErr("%d metadata slots is too many", spec.MetadataSlots)
	case len(spec.BlockDeviceName) > nameLen:
		return nil, specErr("block device name %q is longer than %d bytes", spec.BlockDeviceName, nameLen)
	}
	g := Geometry{MetadataMaxSize: uint32(alignTo(uint64(spec.MetadataMaxSize), SectorSize)), MetadataSlotCount: spec.MetadataSlots, LogicalBlockSize: bs}
	size := uint64(spec.DeviceSize)
	total := g.TotalMetadataSize()
	if size < total {
		return nil, specErr("device of %d bytes cannot hold %d bytes of metadata", size, total)
	}
	var first uint64
	if spec.Alignment != 0 || spec.AlignmentOffset != 0 {
		first = alignToOffset(total, spec.Alignment, spec.AlignmentOffset)
	} else {
		first = alignTo(total, bs)
	}
	if first+uint64(bs) > size {
		return nil, specErr("device must be at least %d bytes, is %d", first+uint64(bs), size)
	}
	dev := BlockDevice{FirstLogicalSector: first / SectorSize, Alignment: spec.Alignment, AlignmentOffset: spec.AlignmentOffset, Size: size, PartitionName: spec.BlockDeviceName}
	m := &Metadata{Geometry: g, MajorVersion: MajorVersion, BlockDevices: []BlockDevice{dev}}
	if spec.AutoSlotSuffixing {
		m.BlockDevices[0].Flags |= BlockDeviceSlotSuffixed
	}
	if spec.VirtualAB {
		m.MinorVersion = versionForExpandedHeader
		m.HeaderFlags |= HeaderFlagVirtualAB
	}
	m.Groups = []Group{{Name: "default"}}
	for _, gs := range spec.Groups {
		if gs.Name == "" || len(gs.Name) > nameLen {
			return nil, specErr("group name %q must be 1 to %d bytes", gs.Name, nameLen)
		}
		if slices.ContainsFunc(m.Groups, func(x Group) bool { return x.Name == gs.Name }) {
			return nil, specErr("group %q defined twice", gs.Name)
		}
		grp := Group{Name: gs.Name, MaximumSize: gs.MaximumSize}
		if spec.AutoSlotSuffixing {
			grp.Flags |= GroupSlotSuffixed
		}
		m.Groups = append(m.Groups, grp)
	}
	used := make([]uint64, len(m.Groups))
	type iv struct{ start, end uint64 }
	var allocated []iv
	alignSector := func(sector uint64) uint64 {
		return alignTo(alignToOffset(sector*SectorSize, spec.Alignment, spec.AlignmentOffset), SectorSize) / SectorSize
	}
	lastSector := size / SectorSize
	for _, ps := range spec.Partitions {
		if ps.Name == "" || len(ps.Name) > nameLen {
			return nil, specErr("partition name %q must be 1 to %d bytes", ps.Name, nameLen)
		}
		if _, dup := m.Partition(ps.Name); dup {
			return nil, specErr("partition %q defined twice", ps.Name)
		}
		if ps.Attributes&^(attrMaskV0|attrMaskV1) != 0 {
			return nil, specErr("partition %s: unsupported attributes %#x", ps.Name, ps.Attributes)
		}
		grp := ps.Group
		if grp == "" {
			grp = "default"
		}
		gi := slices.IndexFunc(m.Groups, func(x Group) bool { return x.Name == grp })
		if gi < 0 {
			return nil, specErr("partition %s: no group %q", ps.Name, grp)
		}
		want := ps.Size
		if ps.Image != nil {
			if want == 0 {
				want = ps.Image.Size()
			} else if ps.Image.Size() > want {
				return nil, specErr("partition %s: image of %d bytes does not fit its size %d", ps.Name, ps.Image.Size(), want)
			}
		}
		if want < 0 {
			return nil, specErr("partition %s: negative size", ps.Name)
		}
		aligned := alignTo(uint64(want), bs)
		if limit := m.Groups[gi].MaximumSize; limit > 0 && aligned > 0 && (used[gi] >= limit || limit-used[gi] < aligned) {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("lp: partition %s (%d bytes) does not fit group %s (%d of %d bytes used)", ps.Name, aligned, grp, used[gi], limit))
		}
		used[gi] += aligned
		p := Partition{Name: ps.Name, Attributes: ps.Attributes, GroupIndex: uint32(gi), Group: grp, Size: aligned}
		if spec.AutoSlotSuffixing {
			p.Attributes |= AttrSlotSuffixed
		}
		if p.Attributes&attrMaskV1 != 0 {
			m.MinorVersion = max(m.MinorVersion, versionForUpdatedAttr)
		}
		// First fit over the free regions between allocated extents, each region starting aligned.
		need := aligned / SectorSize
		bounds := append(slices.Clone(allocated), iv{dev.FirstLogicalSector, dev.FirstLogicalSector}, iv{lastSector, lastSector})
		slices.SortFunc(bounds, func(a, b iv) int {
			if c := cmpU64(a.start, b.start); c != 0 {
				return c
			}
			return cmpU64(a.end, b.end)
		})
		spb := uint64(bs / SectorSize)
		for i := 1; i < len(bounds) && need > 0; i++ {
			start := alignSector(bounds[i-1].end)
			if start >= bounds[i].start {
				continue
			}
			length := (bounds[i].start - start) / spb * spb
			n := min(need, length)
			if n == 0 {
				continue
			}
			p.Extents = append(p.Extents, Extent{NumSectors: n, TargetType: TargetLinear, TargetData: start})
			need -= n
		}
		if need > 0 {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("lp: not enough free space in %s (%d bytes) for partition %s (%d bytes)", dev.PartitionName, size, ps.Name, aligned))
		}
		for _, x := range p.Extents {
			allocated = append(allocated, iv{x.TargetData, x.TargetData + x.NumSectors})
		}
		m.Partitions = append(m.Partitions, p)
	}
	if _, err := m.Marshal(); err != nil {
		return nil, failure.Kinded(failure.ErrUsage, err)
	}
	return m, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// BuildEmpty writes the metadata-only super_empty.img for spec (partition images are ignored): the
// geometry followed by one metadata copy, as lpmake writes it when given no images.
func BuildEmpty(w io.Writer, spec BuildSpec) (*Metadata, error) {
	m, err := Layout(spec)
	if err != nil {
		return nil, err
	}
	blob, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(append(marshalGeometry(m.Geometry), blob...)); err != nil {
		return nil, fmt.Errorf("lp: writing super_empty: %w", err)
	}
	return m, nil
}

// Build writes a raw super image of spec.DeviceSize bytes to w: reserved zeros, both geometry copies,
// every slot's metadata twice, and each partition's image at its extents. Space not covered by an image
// is not written, so w should be a new (empty) file; when w has Truncate (an *os.File) the file is sized
// exactly, otherwise the last byte is written.
func Build(ctx context.Context, w io.WriterAt, spec BuildSpec) (*Metadata, error) {
	m, err := Layout(spec)
	if err != nil {
		return nil, err
	}
	meta, err := metadataRegion(m)
	if err != nil {
		return nil, err
	}
	if _, err := w.WriteAt(meta, 0); err != nil {
		return nil, fmt.Errorf("lp: writing metadata: %w", err)
	}
	size := spec.DeviceSize
	lastWritten := int64(len(meta))
	rep := progress.OrDiscard(spec.Progress)
	buf := make([]byte, 1<<20)
	for i, ps := range spec.Partitions {
		if ps.Image == nil || ps.Image.Size() == 0 {
			continue
		}
		p := m.Partitions[i]
		task := rep.Task("super: "+p.Name, ps.Image.Size())
		end, err := writeExtents(ctx, w, ps.Image, p, buf, task)
		task.Done(err)
		if err != nil {
			return nil, err
		}
		lastWritten = max(lastWritten, end)
	}
	if t, ok := w.(interface{ Truncate(int64) error }); ok {
		if err := t.Truncate(size); err != nil {
			return nil, fmt.Errorf("lp: sizing the output: %w", err)
		}
	} else if lastWritten < size {
		if _, err := w.WriteAt([]byte{0}, size-1); err != nil {
			return nil, fmt.Errorf("lp: sizing the output: %w", err)
		}
	}
	return m, nil
}

// metadataRegion is the start of a super image: reserved zeros, both geometry copies, and every slot's
// metadata twice (primary and backup).
func metadataRegion(m *Metadata) ([]byte, error) {
	blob, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	g := m.Geometry
	meta := make([]byte, 0, g.TotalMetadataSize())
	meta = append(meta, make([]byte, ReservedBytes)...)
	geo := marshalGeometry(g)
	meta = append(meta, geo...)
	meta = append(meta, geo...)
	padded := make([]byte, g.MetadataMaxSize)
	copy(padded, blob)
	for i := uint32(0); i < 2*g.MetadataSlotCount; i++ {
		meta = append(meta, padded...)
	}
	return meta, nil
}

// Compose returns the super image Build would write as an image.Image assembled from the metadata and
// the partition images, without copying them: the unused space is a hole that reads as zeros and that
// image.KnownZero reports, so sparse.Write turns a mostly empty multi-GiB super into a small sparse
// image without reading the gaps.
func Compose(spec BuildSpec) (image.Image, *Metadata, error) {
	m, err := Layout(spec)
	if err != nil {
		return nil, nil, err
	}
	meta, err := metadataRegion(m)
	if err != nil {
		return nil, nil, err
	}
	type piece struct {
		at  int64
		img image.Image
	}
	pieces := []piece{{0, image.New(bytes.NewReader(meta), int64(len(meta)))}}
	for i, ps := range spec.Partitions {
		if ps.Image == nil || ps.Image.Size() == 0 {
			continue
		}
		var src int64
		for _, x := range m.Partitions[i].Extents {
			if src >= ps.Image.Size() {
				break
			}
			n := min(ps.Image.Size()-src, int64(x.NumSectors)*SectorSize)
			pieces = append(pieces, piece{int64(x.TargetData) * SectorSize, image.Section(ps.Image, src, n)})
			src += n
		}
	}
	slices.SortFunc(pieces, func(a, b piece) int { return cmp.Compare(a.at, b.at) })
	var parts []image.Image
	var pos int64
	for _, p := range pieces {
		if p.at < pos {
			return nil, nil, fmt.Errorf("lp: internal error: extents overlap at %d", p.at)
		}
		if p.at > pos {
			parts = append(parts, image.Zero(p.at-pos))
		}
		parts = append(parts, p.img)
		pos = p.at + p.img.Size()
	}
	if size := spec.DeviceSize; pos < size {
		parts = append(parts, image.Zero(size-pos))
	}
	return image.Concat(parts...), m, nil
}

// writeExtents copies img into p's extents in order and returns the end offset of the last byte written.
func writeExtents(ctx context.Context, w io.WriterAt, img image.Image, p Partition, buf []byte, task progress.Task) (int64, error) {
	var src, end int64
	remaining := img.Size()
	for _, x := range p.Extents {
		if remaining == 0 {
			break
		}
		dst := int64(x.TargetData) * SectorSize
		n := min(remaining, int64(x.NumSectors)*SectorSize)
		for done := int64(0); done < n; {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			k := int(min(int64(len(buf)), n-done))
			if got, err := img.ReadAt(buf[:k], src); err != nil && !(errors.Is(err, io.EOF) && got == k) {
				return 0, fmt.Errorf("lp: reading the image for %s at %d: %w", p.Name, src, err)
			}
			if _, err := w.WriteAt(buf[:k], dst+done); err != nil {
				return 0, fmt.Errorf("lp: writing %s: %w", p.Name, err)
			}
			task.Add(int64(k))
			done += int64(k)
			src += int64(k)
		}
		remaining -= n
		end = dst + n
	}
	return end, nil
}
