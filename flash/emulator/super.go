package emulator

import (
	"io"
	"os"

	"github.com/romforge/romforge/image/lp"
)

// superFlashedLocked makes the logical partitions what the super image just written declares, as a
// phone's view of its dynamic partitions is super's LP metadata: every partition of the current slot's
// metadata becomes a logical partition (with the bytes of its extents), and the others disappear. A
// super without valid metadata leaves no logical partitions, as it would leave a phone with nothing to
// mount. Copies are not counted as writes: the flash of super was.
func (d *Device) superFlashedLocked() {
	for n := range d.st.Logical {
		os.Remove(d.PartitionPath(n))
	}
	d.st.Logical = map[string]int64{}
	f, err := os.Open(d.PartitionPath("super"))
	if err != nil {
		d.logf("super: %v", err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return
	}
	s, err := lp.NewReader(f, st.Size())
	if err != nil {
		d.logf("super: no valid LP metadata (%v): no logical partitions", err)
		return
	}
	slot := 0
	if d.st.Slot == "b" && s.Slots() > 1 {
		slot = 1
	}
	m, err := s.Metadata(slot)
	if err != nil {
		d.logf("super: metadata slot %d: %v", slot, err)
		return
	}
	for _, p := range m.Partitions {
		img, err := s.Partition(slot, p.Name)
		if err != nil {
			d.logf("super: %s: %v", p.Name, err)
			continue
		}
		out, err := os.Create(d.PartitionPath(p.Name))
		if err != nil {
			continue
		}
		_, err = io.Copy(out, io.NewSectionReader(img, 0, img.Size()))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			d.logf("super: copying %s: %v", p.Name, err)
			continue
		}
		d.st.Logical[p.Name] = img.Size()
	}
	d.logf("super: %d logical partitions from its metadata", len(d.st.Logical))
}
