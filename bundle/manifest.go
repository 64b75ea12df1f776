package bundle

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash/plan"
	"github.com/romforge/romforge/internal/failure"
)

// ManifestName is the manifest's file name inside a bundle.
const ManifestName = "manifest.json"

// Manifest describes a bundle.
type Manifest struct {
	Format   int      `json:"format"` // 1
	Device   string   `json:"device"`
	Products []string `json:"products"`
	Romforge string   `json:"romforge_version"`
	Source   Source   `json:"source"`
	Sets     []string `json:"patch_sets"`
	// Patch is the patch engine's report (per step: files removed/added/changed with sizes and hashes).
	Patch any `json:"patch_report,omitempty"`
	// AuditBefore/AuditAfter are the audit results of the input and of the output.
	AuditBefore any     `json:"audit_before,omitempty"`
	AuditAfter  any     `json:"audit_after,omitempty"`
	Images      []Image `json:"images"`
	// Super describes the logical partitions packed into the super image, when the bundle has one.
	Super *Super `json:"super,omitempty"`
	// AntiVersion is the ROM's anti-rollback version (-1 when it states none).
	AntiVersion  int                  `json:"anti_version"`
	AntiRollback devices.AntiRollback `json:"anti_rollback"`
	// Steps is the ordered flash plan `romforge flash` runs (image paths relative to the bundle).
	Steps []plan.Step `json:"flash_plan"`
	// RecoveryZip names the recovery-flashable zip, when one was made.
	RecoveryZip string   `json:"recovery_zip,omitempty"`
	Verity      string   `json:"verity"` // disable, resign, keep
	Notes       []string `json:"notes,omitempty"`
	// Timings are seconds per stage (not part of reproducibility: left out when SOURCE_DATE_EPOCH is set).
	Timings map[string]float64 `json:"timings,omitempty"`
}

// Source is where the ROM came from.
type Source struct {
	File   string `json:"file"`
	URL    string `json:"url,omitempty"`
	SHA256 string `json:"sha256"`
	Kind   string `json:"kind"`
	// Metadata is the OTA metadata (post-build, pre-device, …) when the input had it.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Image is one image in the bundle.
type Image struct {
	Partition string `json:"partition"`
	File      string `json:"file,omitempty"` // relative to the bundle, e.g. images/system.img
	Format    string `json:"format"`         // ext4, erofs, raw, boot, vbmeta, sparse-ext4, …
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	Logical   bool   `json:"logical,omitempty"`
	Modified  bool   `json:"modified"`
	AVB       any    `json:"avb,omitempty"`
}

// Super is the content of a super image the build packed: the logical partitions (with their slot
// suffix on A/B devices; File is empty, they live in super.img) and the geometry it was made for.
type Super struct {
	// DeviceSize is the size of the super partition the image was laid out for (the catalog's).
	DeviceSize    int64 `json:"device_size"`
	MetadataSlots int   `json:"metadata_slots"`
	// Slot is the slot whose partitions the image holds ("a"; "" on non-A/B devices). Flashing it pairs
	// with that slot's boot images and ends with set_active to it.
	Slot       string   `json:"slot,omitempty"`
	Partitions []Image  `json:"partitions"`
	Extents    []string `json:"extents,omitempty"`
}

// Write stores m as dir/manifest.json.
func Write(dir string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ManifestName), append(b, '\n'), 0o644)
}

// Read loads dir/manifest.json.
func Read(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("bundle: %s: %w", ManifestName, err))
	}
	if m.Format != 1 {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("bundle: manifest format %d is not one this romforge reads", m.Format))
	}
	return &m, nil
}

// Plan turns a bundle into a flash plan with absolute image paths, refusing paths that leave the bundle.
func Plan(dir string, m *Manifest, d *devices.Device) (*plan.Plan, error) {
	p := &plan.Plan{Device: d, Codename: m.Device, Products: m.Products, AntiVersion: m.AntiVersion, Modified: true}
	if !strings.EqualFold(d.Codename, m.Device) {
		return nil, failure.Kinded(failure.ErrRefused, fmt.Errorf("bundle: built for %s, not %s", m.Device, d.Codename))
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, s := range m.Steps {
		if s.Image != "" {
			clean := filepath.Clean(filepath.FromSlash(s.Image))
			if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
				return nil, failure.Kinded(failure.ErrRefused, fmt.Errorf("bundle: image path %q leaves the bundle", s.Image))
			}
			s.Image = filepath.Join(root, clean)
		}
		p.Steps = append(p.Steps, s)
	}
	return p, nil
}
