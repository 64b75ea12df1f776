package lp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
)

// memWriter is an io.WriterAt over a growing byte slice.
type memWriter struct{ b []byte }

func (w *memWriter) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(w.b) {
		w.b = append(w.b, make([]byte, end-len(w.b))...)
	}
	return copy(w.b[off:], p), nil
}

func smallSpec() BuildSpec {
	data := bytes.Repeat([]byte("romforge"), 4096/8*3)
	return BuildSpec{
		DeviceSize: 4 << 20, MetadataMaxSize: 4096, MetadataSlots: 2, Alignment: 4096,
		Groups: []GroupSpec{{"main", 2 << 20}},
		Partitions: []PartitionSpec{
			{Name: "system", Group: "main", Attributes: AttrReadonly, Image: image.New(bytes.NewReader(data), int64(len(data)))},
			{Name: "vendor", Group: "main", Size: 8192},
		},
	}
}

func buildSmall(t testing.TB) []byte {
	t.Helper()
	var w memWriter
	if _, err := Build(context.Background(), &w, smallSpec()); err != nil {
		t.Fatal(err)
	}
	return w.b
}

func emptySmall(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := BuildEmpty(&b, smallSpec()); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// reseal recomputes the checksums of the metadata blob at off so that a crafted field is judged on its
// meaning rather than rejected by the checksum.
func reseal(b []byte, off int) {
	hs := int(le.Uint32(b[off+8:]))
	ts := int(le.Uint32(b[off+44:]))
	if off+hs+ts <= len(b) {
		sum := sha256.Sum256(b[off+hs : off+hs+ts])
		copy(b[off+48:off+80], sum[:])
	}
	clear(b[off+12 : off+44])
	sum := sha256.Sum256(b[off : off+hs])
	copy(b[off+12:off+44], sum[:])
}

func parse(b []byte) (*Super, error) { return NewReader(bytes.NewReader(b), int64(len(b))) }

func TestRoundTripSmall(t *testing.T) {
	b := buildSmall(t)
	if len(b) != 4<<20 {
		t.Fatalf("size %d", len(b))
	}
	s, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Partition(1, "system")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(image.Reader(img))
	want := bytes.Repeat([]byte("romforge"), 4096/8*3)
	if !bytes.Equal(got, want) {
		t.Fatal("system contents differ")
	}
	v, _ := s.Partition(0, "vendor")
	if v.Size() != 8192 {
		t.Fatalf("vendor size %d", v.Size())
	}
}

func TestBackupCopies(t *testing.T) {
	b := buildSmall(t)
	g := Geometry{MetadataMaxSize: 4096, MetadataSlotCount: 2}

	c := bytes.Clone(b)
	c[ReservedBytes+45] ^= 0xff // primary geometry
	s, err := parse(c)
	if err != nil || len(s.Problems()) != 1 || !strings.Contains(s.Problems()[0], "backup") {
		t.Fatalf("primary geometry corrupt: %v %v", err, s)
	}
	c[ReservedBytes+GeometrySize+45] ^= 0xff // and the backup
	if _, err := parse(c); !errors.Is(err, failure.ErrInvalid) {
		t.Fatalf("both geometries corrupt: %v", err)
	}

	c = bytes.Clone(b)
	c[g.primaryOffset(1)+200] ^= 1
	s, err = parse(c)
	if err != nil || len(s.Problems()) != 1 || !strings.Contains(s.Problems()[0], "slot 1") {
		t.Fatalf("slot 1 primary corrupt: %v %v", err, s)
	}
	c[g.backupOffset(1)+20] ^= 1
	if _, err := parse(c); !errors.Is(err, failure.ErrInvalid) || !strings.Contains(err.Error(), "slot 1") {
		t.Fatalf("slot 1 both corrupt: %v", err)
	}
}

func TestHostileMetadata(t *testing.T) {
	base := emptySmall(t)
	const m = GeometrySize // metadata offset in super_empty
	const tab = m + headerSizeV1_0
	cases := map[string]func(b []byte){
		"truncated":         func(b []byte) {},
		"bad magic":         func(b []byte) { b[m] = 'X' },
		"version 10.3":      func(b []byte) { b[m+6] = 3; reseal(b, m) },
		"version 11":        func(b []byte) { b[m+4] = 11; reseal(b, m) },
		"header checksum":   func(b []byte) { b[m+100] ^= 1 },
		"tables checksum":   func(b []byte) { b[tab] ^= 1 },
		"header size":       func(b []byte) { le.PutUint32(b[m+8:], 256); reseal(b, m) },
		"tables too big":    func(b []byte) { le.PutUint32(b[m+44:], 1<<30); reseal(b, m) },
		"partition count":   func(b []byte) { le.PutUint32(b[m+84:], 1<<31); reseal(b, m) },
		"entry size":        func(b []byte) { le.PutUint32(b[m+88:], 51); reseal(b, m) },
		"table offset":      func(b []byte) { le.PutUint32(b[m+92:], 1<<31); reseal(b, m) },
		"extent index":      func(b []byte) { le.PutUint32(b[tab+40:], 0xffffffff); reseal(b, m) },
		"extent count":      func(b []byte) { le.PutUint32(b[tab+44:], 0xfffffff0); reseal(b, m) },
		"group index":       func(b []byte) { le.PutUint32(b[tab+48:], 7); reseal(b, m) },
		"attributes":        func(b []byte) { le.PutUint32(b[tab+36:], 0x80); reseal(b, m) },
		"v1 attr in 10.0":   func(b []byte) { le.PutUint32(b[tab+36:], AttrUpdated); reseal(b, m) },
		"empty name":        func(b []byte) { b[tab] = 0; reseal(b, m) },
		"duplicate name":    func(b []byte) { copy(b[tab+partitionEntrySize:tab+partitionEntrySize+36], b[tab:tab+36]); reseal(b, m) },
		"geometry slots":    func(b []byte) { le.PutUint32(b[44:], 100000); resealGeometry(b) },
		"geometry max":      func(b []byte) { le.PutUint32(b[40:], 1000); resealGeometry(b) },
		"geometry block":    func(b []byte) { le.PutUint32(b[48:], 0); resealGeometry(b) },
		"geometry struct":   func(b []byte) { le.PutUint32(b[4:], 60); resealGeometry(b) },
		"geometry checksum": func(b []byte) { b[44] ^= 1 },
	}
	for name, mutate := range cases {
		b := bytes.Clone(base)
		if name == "truncated" {
			b = b[:len(b)-10]
		}
		mutate(b)
		if _, err := parse(b); !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func resealGeometry(b []byte) {
	clear(b[8:40])
	sum := sha256.Sum256(b[:geometryStructSize])
	copy(b[8:40], sum[:])
}

// craft rewrites the metadata of a super_empty image from a modified Metadata.
func craft(t *testing.T, edit func(m *Metadata)) []byte {
	t.Helper()
	m, err := Layout(smallSpec())
	if err != nil {
		t.Fatal(err)
	}
	edit(m)
	blob, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return append(marshalGeometry(m.Geometry), blob...)
}

func TestHostileExtents(t *testing.T) {
	cases := map[string]func(m *Metadata){
		"overlap": func(m *Metadata) { m.Partitions[1].Extents[0].TargetData = m.Partitions[0].Extents[0].TargetData + 1 },
		"beyond device": func(m *Metadata) {
			m.Partitions[1].Extents[0].TargetData = m.BlockDevices[0].Size/SectorSize - 1
		},
		"wraps":         func(m *Metadata) { m.Partitions[1].Extents[0].NumSectors = 1<<64 - 1 },
		"into metadata": func(m *Metadata) { m.Partitions[1].Extents[0].TargetData = 1 },
		"bad device":    func(m *Metadata) { m.Partitions[1].Extents[0].TargetSource = 3 },
		"bad type":      func(m *Metadata) { m.Partitions[1].Extents[0].TargetType = 9 },
		"no devices":    func(m *Metadata) { m.BlockDevices = nil },
		"first sector in metadata": func(m *Metadata) {
			m.BlockDevices[0].FirstLogicalSector = 2
			m.Partitions = nil
		},
		"first sector beyond size": func(m *Metadata) {
			m.BlockDevices[0].FirstLogicalSector = 1 << 62
			m.Partitions = nil
		},
		"huge zero extent": func(m *Metadata) {
			m.Partitions[1].Extents = []Extent{{NumSectors: 1 << 60, TargetType: TargetZero}}
		},
	}
	for name, edit := range cases {
		if _, err := parse(craft(t, edit)); !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	// A ZERO extent is legal and reads as zeros.
	b := craft(t, func(m *Metadata) { m.Partitions[1].Extents = []Extent{{NumSectors: 16, TargetType: TargetZero}} })
	if _, err := parse(b); err != nil {
		t.Fatalf("zero extent: %v", err)
	}
}

func TestZeroAndMultiExtentPartition(t *testing.T) {
	full := buildSmall(t)
	s0, _ := parse(full)
	m0, _ := s0.Metadata(0)
	sys := m0.Partitions[0].Extents[0]
	// Split system into two linear extents around a zero extent and place that metadata in every copy.
	m := *m0
	m.Partitions = append([]Partition(nil), m0.Partitions...)
	m.Partitions[0].Extents = []Extent{
		{NumSectors: 8, TargetType: TargetLinear, TargetData: sys.TargetData},
		{NumSectors: 8, TargetType: TargetZero},
		{NumSectors: sys.NumSectors - 8, TargetType: TargetLinear, TargetData: sys.TargetData + 8},
	}
	blob, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g := m.Geometry
	for slot := uint32(0); slot < g.MetadataSlotCount; slot++ {
		copy(full[g.primaryOffset(slot):], blob)
		copy(full[g.backupOffset(slot):], blob)
	}
	s, err := parse(full)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := s.Partition(0, "system")
	got, _ := io.ReadAll(image.Reader(img))
	orig := bytes.Repeat([]byte("romforge"), 4096/8*3)
	want := append(append(bytes.Clone(orig[:4096]), make([]byte, 4096)...), orig[4096:]...)
	if !bytes.Equal(got, want[:len(got)]) || int64(len(got)) != int64(sys.NumSectors+8)*SectorSize {
		t.Fatal("multi-extent partition reads wrong")
	}
	if in := s.Info(); len(in.Partitions[0].Extents) != 3 || in.Partitions[0].Extents[1].TargetType != "zero" || in.Partitions[0].Extents[2].LogicalSector != 16 {
		t.Fatalf("info extents %+v", in.Partitions[0].Extents)
	}
}

func TestTruncatedSuper(t *testing.T) {
	b := buildSmall(t)
	for _, n := range []int{0, 100, 4096, 8192, 20000, 1 << 20} {
		if _, err := parse(b[:n]); !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("truncated to %d: %v", n, err)
		}
	}
}
