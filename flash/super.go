package flash

import (
	"fmt"

	"github.com/romforge/romforge/flash/plan"
	"github.com/romforge/romforge/image/lp"
	"github.com/romforge/romforge/image/sparse"
)

// superSlot is the slot whose logical partitions the plan's super image holds ("" when the plan has no
// such image): the other images must go to that slot and the phone must boot it.
func superSlot(p *plan.Plan) string {
	for _, s := range p.Steps {
		if s.Op == plan.OpFlash && baseName(s.Partition) == "super" && s.Slot != "" {
			return s.Slot
		}
	}
	return ""
}

// superSlots picks the slots to write when a super image fixes one: the super's slot, plus the other
// with --slot all. A request for the other slot alone is refused (reason non-empty): its boot images
// would pair with no system.
func superSlots(requested, cur, fixed string) (slots []string, note, reason string) {
	other := map[string]string{"a": "b", "b": "a"}[fixed]
	switch requested {
	case "", "other", fixed:
		if requested == "other" && cur == fixed {
			note = fmt.Sprintf("the bundle's super image holds the slot-%s partitions: writing slot %s (the active one) rather than the other", fixed, fixed)
		}
		return []string{fixed}, note, ""
	case "all":
		return []string{fixed, other}, "", ""
	}
	return nil, "", fmt.Sprintf("--slot %s: the bundle's super image holds the slot-%s partitions, so its boot images must go to slot %s (use --slot %s, all, or none)", requested, fixed, fixed, fixed)
}

// checkSuperImage refuses a super image whose LP metadata does not describe a super of the device's
// size: flashing a layout made for another size would leave partitions beyond the end or metadata the
// bootloader rejects.
func checkSuperImage(path string, partSize int64) error {
	img, c, err := sparse.Open(path)
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := lp.NewReader(img, img.Size())
	if err != nil {
		return fmt.Errorf("it is not a super image: %w", err)
	}
	m, err := s.Metadata(0)
	if err != nil {
		return err
	}
	for _, b := range m.BlockDevices {
		if b.PartitionName == "super" && int64(b.Size) != partSize {
			return fmt.Errorf("its metadata is for a %d-byte super, the device's is %d bytes", b.Size, partSize)
		}
	}
	return nil
}
