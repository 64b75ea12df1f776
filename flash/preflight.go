package flash

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/romforge/romforge/flash/plan"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/sparse"
)

// Facts are the device's answers that decide whether and how to flash.
type Facts struct {
	Product        string           `json:"product"`
	Serial         string           `json:"serialno"`
	Unlocked       string           `json:"unlocked"`
	CurrentSlot    string           `json:"current_slot,omitempty"`
	SlotCount      int              `json:"slot_count"`
	Anti           string           `json:"anti,omitempty"`
	MaxDownload    int64            `json:"max_download_size"`
	Userspace      bool             `json:"is_userspace"`
	BatterySOCOK   string           `json:"battery_soc_ok,omitempty"`
	BatteryVoltage string           `json:"battery_voltage,omitempty"`
	Snapshot       string           `json:"snapshot_update_status,omitempty"`
	PartitionSize  map[string]int64 `json:"partition_sizes"`
}

// Command is one concrete fastboot operation after slots are resolved.
type Command struct {
	Op        string `json:"op"`
	Partition string `json:"partition,omitempty"` // with slot suffix when the partition has slots
	Image     string `json:"image,omitempty"`
	// Size is the image's expanded size (what must fit the partition).
	Size    int64  `json:"size,omitempty"`
	Logical bool   `json:"logical,omitempty"`
	Slot    string `json:"slot,omitempty"`
}

// String renders the command as the equivalent AOSP fastboot command line.
func (c Command) String() string {
	switch c.Op {
	case plan.OpFlash:
		return fmt.Sprintf("fastboot flash %s %s", c.Partition, imageName(c.Image))
	case plan.OpErase:
		return "fastboot erase " + c.Partition
	case plan.OpSetActive:
		return "fastboot set_active " + c.Slot
	case plan.OpReboot:
		return "fastboot reboot"
	case plan.OpRebootBootloader:
		return "fastboot reboot-bootloader"
	case plan.OpRebootFastboot:
		return "fastboot reboot fastboot"
	case "resize-logical-partition":
		return fmt.Sprintf("fastboot resize-logical-partition %s %d", c.Partition, c.Size)
	case "snapshot-update":
		return "fastboot snapshot-update cancel"
	}
	return "fastboot " + c.Op
}

// Checked is a plan that passed pre-flight: the device's facts and the exact commands to run.
type Checked struct {
	Facts    Facts     `json:"facts"`
	Commands []Command `json:"commands"`
	Notes    []string  `json:"notes,omitempty"`
}

// PreflightOptions tune the checks.
type PreflightOptions struct {
	// CancelSnapshot cancels a pending Virtual A/B snapshot update instead of refusing.
	CancelSnapshot bool
	// AssumeUnlocked accepts a device that does not report its lock state (old bootloaders).
	AssumeUnlocked bool
	// MinBatteryMV refuses below this battery voltage when the device reports one (default 3500).
	MinBatteryMV int
}

// getvar asks a variable; a FAIL reply or an empty answer is "" (unknown), never a default value.
func getvar(ctx context.Context, d Device, name string) string {
	v, err := d.GetVar(ctx, name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(v)
}

func parseSize(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		// Some bootloaders answer hex without 0x.
		if n2, err2 := strconv.ParseInt(s, 16, 64); err2 == nil {
			return n2, true
		}
		return 0, false
	}
	return n, n >= 0
}

// imageSize returns the expanded size of a raw or sparse image file.
func imageSize(path string) (int64, error) {
	img, c, err := sparse.Open(path)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return img.Size(), nil
}

// Preflight asks the device everything that can make the plan dangerous and refuses (plan.RefusedError,
// listing every reason) before anything is written. It sends only getvar commands.
func Preflight(ctx context.Context, d Device, p *plan.Plan, opt PreflightOptions) (*Checked, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if opt.MinBatteryMV == 0 {
		opt.MinBatteryMV = 3500
	}
	var reasons []string
	notes := append([]string(nil), p.Notes...)
	refuse := func(f string, a ...any) { reasons = append(reasons, fmt.Sprintf(f, a...)) }
	f := Facts{PartitionSize: map[string]int64{}}
	f.Product = getvar(ctx, d, "product")
	f.Serial = getvar(ctx, d, "serialno")
	f.Unlocked = strings.ToLower(getvar(ctx, d, "unlocked"))
	f.CurrentSlot = strings.TrimPrefix(getvar(ctx, d, "current-slot"), "_")
	if n, ok := parseSize(getvar(ctx, d, "slot-count")); ok {
		f.SlotCount = int(n)
	}
	f.MaxDownload, _ = parseSize(getvar(ctx, d, "max-download-size"))
	f.Userspace = getvar(ctx, d, "is-userspace") == "yes"
	f.BatterySOCOK = getvar(ctx, d, "battery-soc-ok")
	f.BatteryVoltage = getvar(ctx, d, "battery-voltage")
	f.Snapshot = getvar(ctx, d, "snapshot-update-status")
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Identity.
	products := p.Products
	if len(products) == 0 {
		products = p.Device.Products
	}
	okProduct := false
	for _, pr := range products {
		okProduct = okProduct || strings.EqualFold(pr, f.Product)
	}
	switch {
	case f.Product == "":
		refuse("the device did not answer 'getvar product'; is it in fastboot mode and is it a %s?", p.Device.DisplayName())
	case !okProduct:
		refuse("the device is a %q, but this plan is for %s (%s): wrong phone", f.Product, p.Device.Codename, strings.Join(products, ", "))
	}

	// Lock state.
	switch f.Unlocked {
	case "yes", "true", "1":
	case "no", "false", "0":
		refuse("the bootloader is locked: unlock it first (Xiaomi: Mi Unlock); flashing a locked device fails or bricks it")
	default:
		if !opt.AssumeUnlocked {
			refuse("the device does not report its lock state (getvar unlocked); check with 'fastboot oem device-info' and pass --assume-unlocked if it is unlocked")
		} else {
			notes = append(notes, "lock state not reported; assumed unlocked as asked")
		}
	}

	// Battery.
	if f.BatterySOCOK == "no" {
		refuse("the device reports a battery too low to flash (battery-soc-ok: no): charge it first")
	}
	if mv, ok := parseSize(f.BatteryVoltage); ok && mv > 0 && mv < int64(opt.MinBatteryMV) {
		refuse("battery at %d mV, below %d mV: charge it first", mv, opt.MinBatteryMV)
	}

	// Snapshots (Virtual A/B).
	cancelSnapshot := false
	switch f.Snapshot {
	case "", "none":
	case "merging":
		refuse("a Virtual A/B update is still merging (snapshot-update-status: merging): boot Android and let it finish first")
	default:
		if opt.CancelSnapshot {
			cancelSnapshot = true
			notes = append(notes, "pending snapshot update ("+f.Snapshot+") will be cancelled first")
		} else {
			refuse("a Virtual A/B update is pending (snapshot-update-status: %s): boot Android once, or pass --cancel-snapshot", f.Snapshot)
		}
	}

	// Anti-rollback.
	touchesFirmware := false
	for _, s := range p.Steps {
		if s.Op == plan.OpFlash && firmwarePartitions[baseName(s.Partition)] {
			touchesFirmware = true
		}
	}
	if ar := p.Device.AntiRollback; ar.Enforced {
		f.Anti = getvar(ctx, d, ar.Var)
		devAnti, known := parseSize(f.Anti)
		switch {
		case touchesFirmware && p.AntiVersion < 0:
			refuse("the plan flashes bootloader firmware but the ROM states no anti-rollback version; refusing (a lower firmware version bricks the phone)")
		case (touchesFirmware || p.AntiVersion >= 0) && !known:
			refuse("the device enforces anti-rollback but did not answer 'getvar %s' (unknown is not 0); refusing", ar.Var)
		case p.AntiVersion >= 0 && known && int64(p.AntiVersion) < devAnti:
			refuse("anti-rollback: the ROM is version %d, the device is at %d: flashing it would brick the phone", p.AntiVersion, devAnti)
		case !touchesFirmware && p.AntiVersion < 0:
			notes = append(notes, "no bootloader firmware in the plan: anti-rollback does not apply")
		}
	}

	// Slots.
	ab := f.SlotCount >= 2
	if p.Device.AB && !ab {
		refuse("the catalog says %s is A/B but the device reports slot-count %d: wrong device or mode", p.Device.Codename, f.SlotCount)
	}
	if !p.Device.AB && ab {
		refuse("the device reports %d slots but the catalog says %s is A-only: wrong device", f.SlotCount, p.Device.Codename)
	}
	var slots []string // target slots in write order
	if ab {
		cur := f.CurrentSlot
		if cur != "a" && cur != "b" {
			refuse("the device reports current-slot %q; cannot choose a slot safely", f.CurrentSlot)
		}
		other := map[string]string{"a": "b", "b": "a"}[cur]
		switch p.Slot {
		case "", "other":
			slots = []string{other}
		case "a", "b":
			slots = []string{p.Slot}
		case "all":
			slots = []string{other, cur}
		}
		if fixed := superSlot(p); fixed != "" {
			var note, reason string
			if slots, note, reason = superSlots(p.Slot, cur, fixed); reason != "" {
				refuse("%s", reason)
			} else if note != "" {
				notes = append(notes, note)
			}
		}
	}

	// Images: present, hashes, sizes.
	type imgInfo struct{ size int64 }
	infos := map[string]imgInfo{}
	var paths []string
	for _, s := range p.Steps {
		if s.Op == plan.OpFlash {
			if _, seen := infos[s.Image]; !seen {
				paths = append(paths, s.Image)
				infos[s.Image] = imgInfo{}
			}
		}
	}
	sort.Strings(paths)
	for _, path := range paths {
		n, err := imageSize(path)
		if err != nil {
			refuse("image %s cannot be read: %v", path, err)
			continue
		}
		infos[path] = imgInfo{size: n}
	}
	for _, s := range p.Steps {
		if s.Op == plan.OpFlash && s.SHA256 != "" {
			h, err := image.FileSHA256(ctx, s.Image)
			if ctx.Err() != nil {
				return nil, ctx.Err() // interrupted, not a reason to refuse
			}
			if err != nil {
				refuse("image %s: %v", s.Image, err)
			} else if !strings.EqualFold(h, s.SHA256) {
				refuse("image %s has sha256 %s, the bundle recorded %s: it changed or is corrupt", s.Image, h, s.SHA256)
			}
		}
	}

	// Commands.
	var cmds []Command
	if cancelSnapshot {
		cmds = append(cmds, Command{Op: "snapshot-update"})
	}
	var physical, logical []plan.Step
	var tail []plan.Step
	for _, s := range p.Steps {
		switch {
		case s.Op == plan.OpFlash && s.Logical:
			logical = append(logical, s)
		case s.Op == plan.OpFlash || s.Op == plan.OpErase:
			physical = append(physical, s)
		case s.Op == plan.OpReboot || s.Op == plan.OpRebootBootloader || s.Op == plan.OpRebootFastboot || s.Op == plan.OpSetActive:
			tail = append(tail, s) // reboots and explicit slot changes come after every write
		case s.Op == plan.OpLock:
			notes = append(notes, "the ROM's script relocks the bootloader; romforge never relocks (with anything but untouched vendor-signed images that bricks Xiaomi phones): lock it yourself if you are sure")
		}
	}
	withSlot := func(part string) []string {
		if !ab {
			return []string{part}
		}
		if strings.HasSuffix(part, "_a") || strings.HasSuffix(part, "_b") {
			return []string{part}
		}
		if v := getvar(ctx, d, "has-slot:"+part); v == "no" {
			return []string{part}
		}
		var out []string
		for _, sl := range slots {
			out = append(out, part+"_"+sl)
		}
		return out
	}
	fits := func(part string, size int64, logical bool) {
		if logical {
			return // checked against super below
		}
		psz, ok := parseSize(getvar(ctx, d, "partition-size:"+part))
		if !ok {
			if cp, found := p.Device.Partition(baseName(part)); found && cp.Size > 0 {
				psz, ok = cp.Size, true
				notes = append(notes, fmt.Sprintf("%s: size from the catalog (%d), the device did not report it", part, cp.Size))
			}
		}
		f.PartitionSize[part] = psz
		switch {
		case !ok:
			refuse("the device does not report the size of %s and the catalog does not know it; cannot prove the image fits", part)
		case size > psz:
			refuse("%s is %d bytes but partition %s holds %d bytes", imageName(fileFor(p, part)), size, part, psz)
		}
	}
	for _, s := range physical {
		for _, part := range withSlot(s.Partition) {
			c := Command{Op: s.Op, Partition: part}
			if s.Op == plan.OpFlash {
				c.Image, c.Size = s.Image, infos[s.Image].size
				fits(part, c.Size, false)
				if part == "super" && f.PartitionSize[part] > 0 {
					if err := checkSuperImage(s.Image, f.PartitionSize[part]); err != nil {
						refuse("%s cannot go to super: %v", imageName(s.Image), err)
					}
				}
			}
			cmds = append(cmds, c)
		}
	}
	if len(logical) > 0 {
		var total int64
		for _, s := range logical {
			total += infos[s.Image].size
		}
		if sup := p.Device.Super; sup != nil {
			limit := sup.Size
			for _, g := range sup.Groups {
				if limit == 0 || g.MaxSize < limit {
					limit = g.MaxSize
				}
			}
			if limit > 0 && total > limit {
				refuse("logical partitions need %d bytes but super's group holds %d", total, limit)
			}
		}
		// Always planned, also when the phone is in fastbootd already (Run then skips it): the commands
		// must not depend on the mode, or a journal written before the reboot would not match the plan
		// a resume computes after it.
		cmds = append(cmds, Command{Op: plan.OpRebootFastboot})
		for _, s := range logical {
			for _, part := range withSlot(s.Partition) {
				cmds = append(cmds, Command{Op: "resize-logical-partition", Partition: part, Size: infos[s.Image].size, Logical: true})
				cmds = append(cmds, Command{Op: plan.OpFlash, Partition: part, Image: s.Image, Size: infos[s.Image].size, Logical: true})
			}
		}
	}
	if p.Wipe {
		erased := map[string]bool{} // a ROM script that wipes already needs no second erase
		for _, c := range cmds {
			if c.Op == plan.OpErase {
				erased[c.Partition] = true
			}
		}
		if !erased["userdata"] {
			cmds = append(cmds, Command{Op: plan.OpErase, Partition: "userdata"})
		}
		// Only phones with dynamic partitions or FBE v2 have metadata; erasing a partition the phone
		// lacks fails the run after everything else was written.
		if !erased["metadata"] && (p.Device.Dynamic || getvar(ctx, d, "partition-size:metadata") != "") {
			cmds = append(cmds, Command{Op: plan.OpErase, Partition: "metadata"})
		}
	}
	if ab && len(slots) > 0 {
		cmds = append(cmds, Command{Op: plan.OpSetActive, Slot: slots[0]})
	}
	for _, s := range tail {
		if s.Op == plan.OpSetActive {
			continue // the slot written is activated above, after every write
		}
		if s.Op == plan.OpReboot && p.SkipReboot {
			continue
		}
		cmds = append(cmds, Command{Op: s.Op})
	}
	if len(reasons) > 0 {
		return nil, &plan.RefusedError{Reasons: reasons}
	}
	return &Checked{Facts: f, Commands: cmds, Notes: notes}, nil
}

func fileFor(p *plan.Plan, part string) string {
	for _, s := range p.Steps {
		if s.Op == plan.OpFlash && baseName(s.Partition) == baseName(part) {
			return s.Image
		}
	}
	return part
}
