package lp

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/romforge/romforge/internal/validators"
)

// dumpText renders metadata exactly as AOSP lpdump prints it, so our parse can be compared with
// lpdump's line by line.
func dumpText(m *Metadata, slot int, multi bool) string {
	var b strings.Builder
	if multi {
		fmt.Fprintf(&b, "Slot %d:\n", slot)
	}
	flags := func(s []string) string {
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, ",")
	}
	fmt.Fprintf(&b, "Metadata version: %s\n", m.Version())
	blob, _ := m.Marshal()
	fmt.Fprintf(&b, "Metadata size: %d bytes\n", len(blob))
	fmt.Fprintf(&b, "Metadata max size: %d bytes\n", m.Geometry.MetadataMaxSize)
	fmt.Fprintf(&b, "Metadata slot count: %d\n", m.Geometry.MetadataSlotCount)
	fmt.Fprintf(&b, "Header flags: %s\n", flags(HeaderFlagNames(m.HeaderFlags)))
	b.WriteString("Partition table:\n------------------------\n")
	type lin struct {
		dev      string
		start, n uint64
		name     string
	}
	var layout []lin
	for _, p := range m.Partitions {
		fmt.Fprintf(&b, "  Name: %s\n  Group: %s\n  Attributes: %s\n  Extents:\n", p.Name, p.Group, flags(AttributeNames(p.Attributes)))
		var first uint64
		for _, x := range p.Extents {
			fmt.Fprintf(&b, "    %d .. %d ", first, first+x.NumSectors-1)
			first += x.NumSectors
			if x.TargetType == TargetLinear {
				dev := m.BlockDevices[x.TargetSource].PartitionName
				fmt.Fprintf(&b, "linear %s %d", dev, x.TargetData)
				layout = append(layout, lin{dev, x.TargetData, x.NumSectors, p.Name})
			} else {
				b.WriteString("zero")
			}
			b.WriteString("\n")
		}
		b.WriteString("------------------------\n")
	}
	slices.SortStableFunc(layout, func(a, c lin) int {
		if a.dev != c.dev {
			return strings.Compare(a.dev, c.dev)
		}
		return cmpU64(a.start, c.start)
	})
	b.WriteString("Super partition layout:\n------------------------\n")
	for _, l := range layout {
		fmt.Fprintf(&b, "%s: %d .. %d: %s (%d sectors)\n", l.dev, l.start, l.start+l.n, l.name, l.n)
	}
	b.WriteString("------------------------\nBlock device table:\n------------------------\n")
	for _, d := range m.BlockDevices {
		f := []string{}
		if d.Flags&BlockDeviceSlotSuffixed != 0 {
			f = append(f, "slot-suffixed")
		}
		fmt.Fprintf(&b, "  Partition name: %s\n  First sector: %d\n  Size: %d bytes\n  Flags: %s\n------------------------\n", d.PartitionName, d.FirstLogicalSector, d.Size, flags(f))
	}
	b.WriteString("Group table:\n------------------------\n")
	for _, g := range m.Groups {
		f := []string{}
		if g.Flags&GroupSlotSuffixed != 0 {
			f = append(f, "slot-suffixed")
		}
		fmt.Fprintf(&b, "  Name: %s\n  Maximum size: %d bytes\n  Flags: %s\n------------------------\n", g.Name, g.MaximumSize, flags(f))
	}
	return b.String()
}

// lpdumpJSON is the subset of `lpdump --json` output.
type lpdumpJSON struct {
	Partitions []struct {
		Name      string `json:"name"`
		GroupName string `json:"group_name"`
		IsDynamic bool   `json:"is_dynamic"`
		Size      string `json:"size"`
	} `json:"partitions"`
	Groups []struct {
		Name        string `json:"name"`
		MaximumSize string `json:"maximum_size"`
	} `json:"groups"`
	BlockDevices []struct {
		Name            string `json:"name"`
		Size            string `json:"size"`
		BlockSize       string `json:"block_size"`
		Alignment       string `json:"alignment"`
		AlignmentOffset string `json:"alignment_offset"`
	} `json:"block_devices"`
}

// u64s renders a proto3 JSON uint64 ("" for 0, as omitted fields).
func u64s(v uint64) string {
	if v == 0 {
		return ""
	}
	return strconv.FormatUint(v, 10)
}

// compareLpdumpJSON checks lpdump --json's view of path field by field against m.
func compareLpdumpJSON(t *testing.T, path string, m *Metadata) {
	t.Helper()
	out := validators.Run(t, "lpdump", "--json", path)
	var j lpdumpJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("lpdump --json: %v\n%s", err, out)
	}
	if len(j.Partitions) != len(m.Partitions) || len(j.Groups) != len(m.Groups) || len(j.BlockDevices) != len(m.BlockDevices) {
		t.Fatalf("lpdump --json counts differ from ours:\n%s\nours: %+v", out, m)
	}
	for i, p := range j.Partitions {
		q := m.Partitions[i]
		if p.Name != q.Name || p.GroupName != q.Group || !p.IsDynamic || p.Size != u64s(q.Size) {
			t.Errorf("partition %d: lpdump %+v, ours %s/%s/%d", i, p, q.Name, q.Group, q.Size)
		}
	}
	for i, g := range j.Groups {
		q := m.Groups[i]
		if g.Name != q.Name || g.MaximumSize != u64s(q.MaximumSize) {
			t.Errorf("group %d: lpdump %+v, ours %+v", i, g, q)
		}
	}
	for i, d := range j.BlockDevices {
		q := m.BlockDevices[i]
		if d.Name != q.PartitionName || d.Size != u64s(q.Size) || d.BlockSize != u64s(uint64(m.Geometry.LogicalBlockSize)) ||
			d.Alignment != u64s(uint64(q.Alignment)) || d.AlignmentOffset != u64s(uint64(q.AlignmentOffset)) {
			t.Errorf("block device %d: lpdump %+v, ours %+v", i, d, q)
		}
	}
}

// compareLpdumpText checks lpdump's text dump of every slot against ours.
func compareLpdumpText(t *testing.T, path string, s *Super) {
	t.Helper()
	for slot := 0; slot < s.Slots(); slot++ {
		m, err := s.Metadata(slot)
		if err != nil {
			t.Fatal(err)
		}
		if slot >= 2 {
			// lpdump on a host aborts for slots beyond 1 (it derives a slot suffix); lpmake writes the
			// same metadata to every slot, so compare with slot 0.
			m0, _ := s.Metadata(0)
			if !reflect.DeepEqual(m, m0) {
				t.Errorf("%s: slot %d differs from slot 0", path, slot)
			}
			continue
		}
		want := validators.Run(t, "lpdump", "--slot="+strconv.Itoa(slot), path)
		if got := dumpText(m, slot, s.Slots() > 1); got != want {
			t.Errorf("%s slot %d: our parse differs from lpdump:\n--- lpdump\n%s\n--- ours\n%s", path, slot, want, got)
		}
	}
}

func openSuper(t *testing.T, path string) *Super {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	s, err := NewReader(f, st.Size())
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}
