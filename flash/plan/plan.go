// Package plan holds the flash plan types: the ordered steps a bundle, a Xiaomi fastboot ROM or
// PART=IMAGE pairs ask of a phone. It is a leaf so the stages that write plans (bundle, pipeline) do not
// import the flasher that carries them out.
package plan

import (
	"fmt"
	"os"
	"strings"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/internal/failure"
)

// Step operations.
const (
	OpFlash            = "flash"
	OpErase            = "erase"
	OpSetActive        = "set_active"
	OpReboot           = "reboot"
	OpRebootBootloader = "reboot-bootloader"
	OpRebootFastboot   = "reboot-fastboot"
	OpLock             = "lock" // oem lock / flashing lock: refused after modified images
)

// Step is one planned operation.
type Step struct {
	Op        string `json:"op"`
	Partition string `json:"partition,omitempty"`
	// Image is the file to flash (raw or sparse).
	Image string `json:"image,omitempty"`
	// SHA256 of Image as the bundle recorded it; checked before the first write.
	SHA256 string `json:"sha256,omitempty"`
	// Logical partitions live in super and are flashed from fastbootd.
	Logical bool `json:"logical,omitempty"`
	// Slot is "", "a", "b" for set_active; for flash it is filled in by Resolve.
	Slot string `json:"slot,omitempty"`
}

// Plan is what to do to one device.
type Plan struct {
	Device *devices.Device `json:"-"`
	// Codename is the catalog device the plan is for.
	Codename string `json:"device"`
	// Products are the getvar product values the plan accepts (default: the catalog's).
	Products []string `json:"products"`
	// AntiVersion is the ROM's anti-rollback version (-1 when the ROM does not state one).
	AntiVersion int    `json:"anti_version"`
	Steps       []Step `json:"steps"`
	// Modified says the images were changed by romforge (no vendor signature): relocking would brick.
	Modified bool `json:"modified"`
	// Slot is what --slot asked: "" (current/inactive per device), "a", "b", "all", "other".
	Slot string `json:"slot,omitempty"`
	// Wipe adds erase of userdata and metadata.
	Wipe bool `json:"wipe,omitempty"`
	// SkipReboot drops the final reboot.
	SkipReboot bool `json:"skip_reboot,omitempty"`
	// Notes say what the loader changed or chose (e.g. user data kept: the script's wipe steps dropped);
	// pre-flight passes them on with its own.
	Notes []string `json:"notes,omitempty"`
}

// PairsPlan builds a plan from PARTITION=IMAGE arguments for a catalog device.
func PairsPlan(d *devices.Device, pairs []string) (*Plan, error) {
	p := &Plan{Device: d, Codename: d.Codename, Products: d.Products, AntiVersion: -1, Modified: true}
	for _, a := range pairs {
		part, img, ok := strings.Cut(a, "=")
		if !ok || part == "" || img == "" {
			return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("flash: %q is not PARTITION=IMAGE", a))
		}
		st := Step{Op: OpFlash, Partition: part, Image: img}
		if cp, ok := d.Partition(strings.TrimSuffix(strings.TrimSuffix(part, "_a"), "_b")); ok {
			st.Logical = cp.Logical
		}
		p.Steps = append(p.Steps, st)
	}
	p.Steps = append(p.Steps, Step{Op: OpReboot})
	return p, nil
}

// Validate checks a plan against its device before anything talks to a phone.
func (p *Plan) Validate() error {
	var reasons []string
	if p.Device == nil {
		return failure.Kinded(failure.ErrUsage, fmt.Errorf("flash: plan names no catalog device"))
	}
	for i, s := range p.Steps {
		switch s.Op {
		case OpFlash:
			if s.Image == "" {
				reasons = append(reasons, fmt.Sprintf("step %d flashes %s without an image", i+1, s.Partition))
				continue
			}
			if _, err := os.Stat(s.Image); err != nil {
				reasons = append(reasons, fmt.Sprintf("step %d: image %s: %v", i+1, s.Image, err))
			}
		case OpLock:
			if p.Modified {
				reasons = append(reasons, "the plan relocks the bootloader after flashing modified images: that bricks Xiaomi phones (the step is refused; remove it)")
			}
		case OpErase, OpSetActive, OpReboot, OpRebootBootloader, OpRebootFastboot:
		default:
			reasons = append(reasons, fmt.Sprintf("step %d: unknown operation %q", i+1, s.Op))
		}
	}
	switch p.Slot {
	case "", "a", "b", "all", "other":
	default:
		reasons = append(reasons, fmt.Sprintf("--slot %q must be a, b, all or other", p.Slot))
	}
	if p.Slot != "" && !p.Device.AB {
		reasons = append(reasons, fmt.Sprintf("--slot %s given, but %s is not an A/B device", p.Slot, p.Device.Codename))
	}
	if len(reasons) > 0 {
		return &RefusedError{Reasons: reasons}
	}
	return nil
}

// RefusedError lists every reason a flash was refused. Nothing was written.
type RefusedError struct {
	Reasons []string
}

func (e *RefusedError) Error() string {
	if len(e.Reasons) == 1 {
		return "flash refused: " + e.Reasons[0]
	}
	return "flash refused:\n  - " + strings.Join(e.Reasons, "\n  - ")
}

// Unwrap classifies the error as a safety refusal (exit 3).
func (e *RefusedError) Unwrap() error { return failure.ErrRefused }
