package lp

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
)

// Super is a parsed super image (or metadata-only super_empty.img).
type Super struct {
	ra       io.ReaderAt
	size     int64
	geometry Geometry
	empty    bool
	slots    []*Metadata
	problems []string
}

// NewReader parses the super image of size bytes in ra: the geometry (the backup copy when the primary
// is corrupt) and every metadata slot (the backup copy when the primary is corrupt), validating every
// count, size and offset. A file that starts with the geometry magic is read as a metadata-only
// super_empty.img with a single copy of one slot.
func NewReader(ra io.ReaderAt, size int64) (*Super, error) {
	s := &Super{ra: ra, size: size}
	head := make([]byte, geometryStructSize)
	if size >= geometryStructSize {
		if _, err := ra.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("lp: reading: %w", err)
		}
		if le.Uint32(head) == GeometryMagic {
			return s, s.readEmpty()
		}
	}
	if err := s.readGeometry(); err != nil {
		return nil, err
	}
	g := s.geometry
	if total := g.TotalMetadataSize(); total > uint64(size) {
		return nil, formatErr(-1, "super image", "file is %d bytes but the geometry reserves %d bytes of metadata: truncated (if it is a sparse image, expand it first)", size, total)
	}
	for slot := uint32(0); slot < g.MetadataSlotCount; slot++ {
		m, err := s.readSlot(slot)
		if err != nil {
			return nil, err
		}
		s.slots = append(s.slots, m)
	}
	dev := s.slots[0].BlockDevices[0]
	if dev.Size > uint64(size) {
		return nil, formatErr(-1, "super image", "file is %d bytes but block device %s is %d bytes: truncated (if it is a sparse image, expand it first)", size, dev.PartitionName, dev.Size)
	}
	return s, nil
}

// readEmpty parses super_empty.img: geometry at 0, one metadata blob at 4096.
func (s *Super) readEmpty() error {
	gb, err := safeio.ReadDataAt(s.ra, GeometrySize, 0)
	if err != nil {
		return formatErr(0, "geometry", "reading: %v", err)
	}
	g, err := parseGeometry(gb, 0)
	if err != nil {
		return err
	}
	s.geometry, s.empty = g, true
	n := min(int64(g.MetadataMaxSize), s.size-GeometrySize)
	if n < 0 {
		n = 0
	}
	b, err := safeio.ReadDataAt(s.ra, uint64(n), GeometrySize)
	if err != nil {
		return formatErr(GeometrySize, "metadata", "reading: %v", err)
	}
	m, err := parseMetadata(b, GeometrySize, g)
	if err != nil {
		return err
	}
	s.slots = []*Metadata{m}
	return nil
}

func (s *Super) readGeometry() error {
	var errs []error
	for _, off := range []int64{ReservedBytes, ReservedBytes + GeometrySize} {
		if off+GeometrySize > s.size {
			errs = append(errs, formatErr(off, "geometry", "file is only %d bytes", s.size))
			continue
		}
		b := make([]byte, geometryStructSize)
		if _, err := s.ra.ReadAt(b, off); err != nil {
			errs = append(errs, formatErr(off, "geometry", "reading: %v", err))
			continue
		}
		g, err := parseGeometry(b, off)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(errs) > 0 {
			s.problems = append(s.problems, fmt.Sprintf("primary geometry unusable (%v); used the backup copy", errs[0]))
		}
		s.geometry = g
		return nil
	}
	return fmt.Errorf("lp: no valid geometry (not a super image, or both copies corrupt): %w", errors.Join(errs...))
}

func (s *Super) readSlot(slot uint32) (*Metadata, error) {
	g := s.geometry
	var errs []error
	var got []*Metadata
	for _, off := range []int64{g.primaryOffset(slot), g.backupOffset(slot)} {
		b, err := safeio.ReadDataAt(s.ra, uint64(g.MetadataMaxSize), off)
		if err != nil {
			errs = append(errs, formatErr(off, "metadata", "reading: %v", err))
			continue
		}
		m, err := parseMetadata(b, off, g)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		got = append(got, m)
	}
	switch {
	case len(got) == 0:
		return nil, fmt.Errorf("lp: metadata slot %d: both copies unusable: %w", slot, errors.Join(errs...))
	case len(errs) > 0:
		s.problems = append(s.problems, fmt.Sprintf("slot %d: one metadata copy unusable (%v); used the other", slot, errs[0]))
	case !reflect.DeepEqual(got[0], got[1]):
		s.problems = append(s.problems, fmt.Sprintf("slot %d: primary and backup metadata differ; used the primary", slot))
	}
	return got[0], nil
}

// Geometry returns the metadata geometry.
func (s *Super) Geometry() Geometry { return s.geometry }

// MetadataOnly reports a super_empty.img: metadata without partition contents.
func (s *Super) MetadataOnly() bool { return s.empty }

// Slots returns how many metadata slots were read (1 for super_empty.img).
func (s *Super) Slots() int { return len(s.slots) }

// Problems lists corrupt copies that were recovered from their backups.
func (s *Super) Problems() []string { return slices.Clone(s.problems) }

// Metadata returns a slot's partition table.
func (s *Super) Metadata(slot int) (*Metadata, error) {
	if slot < 0 || slot >= len(s.slots) {
		return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("lp: slot %d out of range (the image has %d metadata slots)", slot, len(s.slots)))
	}
	return s.slots[slot], nil
}

// Partition returns a logical partition's contents as an image over the super file, without copying:
// LINEAR extents are sections of the file, ZERO extents read as zeros.
func (s *Super) Partition(slot int, name string) (image.Image, error) {
	m, err := s.Metadata(slot)
	if err != nil {
		return nil, err
	}
	p, ok := m.Partition(name)
	if !ok {
		names := make([]string, len(m.Partitions))
		for i, q := range m.Partitions {
			names[i] = q.Name
		}
		return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("lp: no partition %q in slot %d (have %v)", name, slot, names))
	}
	if s.empty && p.Size > 0 {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("lp: %s: this is a metadata-only super_empty.img; it holds no partition contents", name))
	}
	parts := make([]image.Image, 0, len(p.Extents))
	for i, x := range p.Extents {
		n := int64(x.NumSectors) * SectorSize
		switch x.TargetType {
		case TargetZero:
			parts = append(parts, image.Zero(n))
		case TargetLinear:
			if x.TargetSource != 0 {
				return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("lp: %s extent %d lives on block device %s, not in this super image (retrofit device): read that partition instead",
					name, i, m.BlockDevices[x.TargetSource].PartitionName))
			}
			off := int64(x.TargetData) * SectorSize
			if err := safeio.CheckRange(off, n, s.size); err != nil {
				return nil, formatErr(-1, fmt.Sprintf("partition %s extent %d", name, i), "%v: the image is truncated", err)
			}
			parts = append(parts, image.Section(image.New(s.ra, s.size), off, n))
		}
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return image.Concat(parts...), nil
}
