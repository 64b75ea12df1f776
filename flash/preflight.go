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

// partitionSize reads a partition-size answer. Qualcomm's ABL and AOSP's fastbootd answer 0x-hex, but
// MediaTek's lk answers hex without the 0x ("2000000" is a 32 MiB boot), so digits alone are ambiguous.
// They are read as hex when they match the catalog's size that way, or the phone is a MediaTek one;
// otherwise as decimal, the smaller reading, so that a doubt can only refuse an image, never pass one
// that does not fit.
func partitionSize(answer string, catalog int64, mediatek bool) (int64, bool) {
	s := strings.TrimSpace(answer)
	if s == "" || strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") || strings.ContainsAny(s, "abcdefABCDEF") {
		return parseSize(s)
	}
	hex, errHex := strconv.ParseInt(s, 16, 64)
	dec, errDec := strconv.ParseInt(s, 10, 64)
	switch {
	case errHex == nil && (mediatek || catalog > 0 && hex == catalog):
		return hex, hex >= 0
	case errDec == nil:
		return dec, dec >= 0
	}
	return 0, false
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
	c := &checker{ctx: ctx, d: d, p: p, opt: opt, notes: append([]string(nil), p.Notes...), f: Facts{PartitionSize: map[string]int64{}}}
	if err := c.readFacts(); err != nil {
		return nil, err
	}
	c.identity()
	c.lockState()
	c.battery()
	c.snapshot()
	c.antiRollback()
	c.chooseSlots()
	if err := c.images(); err != nil {
		return nil, err
	}
	cmds := c.commands()
	if len(c.reasons) > 0 {
		return nil, &plan.RefusedError{Reasons: c.reasons}
	}
	return &Checked{Facts: c.f, Commands: cmds, Notes: c.notes}, nil
}

// checker is one pre-flight run: the device's answers, and the reasons and notes each check adds.
type checker struct {
	ctx     context.Context
	d       Device
	p       *plan.Plan
	opt     PreflightOptions
	f       Facts
	reasons []string
	notes   []string
	// Set by the checks for the commands: a pending snapshot to cancel, A/B, the slots to write in order,
	// and each image's size.
	cancelSnapshot bool
	ab             bool
	slots          []string
	infos          map[string]imgInfo
}

type imgInfo struct{ size int64 }

func (c *checker) refuse(format string, a ...any) {
	c.reasons = append(c.reasons, fmt.Sprintf(format, a...))
}

// readFacts asks the device what every check needs.
func (c *checker) readFacts() error {
	c.f.Product = getvar(c.ctx, c.d, "product")
	c.f.Serial = getvar(c.ctx, c.d, "serialno")
	c.f.Unlocked = strings.ToLower(getvar(c.ctx, c.d, "unlocked"))
	c.f.CurrentSlot = strings.TrimPrefix(getvar(c.ctx, c.d, "current-slot"), "_")
	if n, ok := parseSize(getvar(c.ctx, c.d, "slot-count")); ok {
		c.f.SlotCount = int(n)
	}
	c.f.MaxDownload, _ = parseSize(getvar(c.ctx, c.d, "max-download-size"))
	c.f.Userspace = getvar(c.ctx, c.d, "is-userspace") == "yes"
	c.f.BatterySOCOK = getvar(c.ctx, c.d, "battery-soc-ok")
	c.f.BatteryVoltage = getvar(c.ctx, c.d, "battery-voltage")
	c.f.Snapshot = getvar(c.ctx, c.d, "snapshot-update-status")
	if err := c.ctx.Err(); err != nil {
		return err
	}
	return nil
}

// identity: the phone is one the plan is for.
func (c *checker) identity() {
	products := c.p.Products
	if len(products) == 0 {
		products = c.p.Device.Products
	}
	okProduct := false
	for _, pr := range products {
		okProduct = okProduct || strings.EqualFold(pr, c.f.Product)
	}
	switch {
	case c.f.Product == "":
		c.refuse("the device did not answer 'getvar product'; is it in fastboot mode and is it a %s?", c.p.Device.DisplayName())
	case !okProduct:
		c.refuse("the device is a %q, but this plan is for %s (%s): wrong phone", c.f.Product, c.p.Device.Codename, strings.Join(products, ", "))
	}
}

// lockState: the bootloader is unlocked (or assumed so, as asked).
func (c *checker) lockState() {
	switch c.f.Unlocked {
	case "yes", "true", "1":
	case "no", "false", "0":
		c.refuse("the bootloader is locked: unlock it first (Xiaomi: Mi Unlock); flashing a locked device fails or bricks it")
	default:
		if !c.opt.AssumeUnlocked {
			c.refuse("the device does not report its lock state (getvar unlocked); check with 'fastboot oem device-info' and pass --assume-unlocked if it is unlocked")
		} else {
			c.notes = append(c.notes, "lock state not reported; assumed unlocked as asked")
		}
	}
}

// battery: charged enough to finish.
func (c *checker) battery() {
	if c.f.BatterySOCOK == "no" {
		c.refuse("the device reports a battery too low to flash (battery-soc-ok: no): charge it first")
	}
	if mv, ok := parseSize(c.f.BatteryVoltage); ok && mv > 0 && mv < int64(c.opt.MinBatteryMV) {
		c.refuse("battery at %d mV, below %d mV: charge it first", mv, c.opt.MinBatteryMV)
	}
}

// snapshot: no Virtual A/B update merging or pending (unless cancelling it was asked).
func (c *checker) snapshot() {
	switch c.f.Snapshot {
	case "", "none":
	case "merging":
		c.refuse("a Virtual A/B update is still merging (snapshot-update-status: merging): boot Android and let it finish first")
	default:
		if c.opt.CancelSnapshot {
			c.cancelSnapshot = true
			c.notes = append(c.notes, "pending snapshot update ("+c.f.Snapshot+") will be cancelled first")
		} else {
			c.refuse("a Virtual A/B update is pending (snapshot-update-status: %s): boot Android once, or pass --cancel-snapshot", c.f.Snapshot)
		}
	}
}

// antiRollback: firmware is never older than the phone's anti-rollback index.
func (c *checker) antiRollback() {
	touchesFirmware := false
	for _, s := range c.p.Steps {
		if s.Op == plan.OpFlash && firmwarePartitions[baseName(s.Partition)] {
			touchesFirmware = true
		}
	}
	if ar := c.p.Device.AntiRollback; ar.Enforced {
		c.f.Anti = getvar(c.ctx, c.d, ar.Var)
		devAnti, known := parseSize(c.f.Anti)
		switch {
		case touchesFirmware && c.p.AntiVersion < 0:
			c.refuse("the plan flashes bootloader firmware but the ROM states no anti-rollback version; refusing (a lower firmware version bricks the phone)")
		case (touchesFirmware || c.p.AntiVersion >= 0) && !known:
			c.refuse("the device enforces anti-rollback but did not answer 'getvar %s' (unknown is not 0); refusing", ar.Var)
		case c.p.AntiVersion >= 0 && known && int64(c.p.AntiVersion) < devAnti:
			c.refuse("anti-rollback: the ROM is version %d, the device is at %d: flashing it would brick the phone", c.p.AntiVersion, devAnti)
		case !touchesFirmware && c.p.AntiVersion < 0:
			c.notes = append(c.notes, "no bootloader firmware in the plan: anti-rollback does not apply")
		}
	}
}

// chooseSlots: the catalog and the phone agree on A/B, and the slots to write, in order.
func (c *checker) chooseSlots() {
	c.ab = c.f.SlotCount >= 2
	ab := c.ab
	if c.p.Device.AB && !ab {
		c.refuse("the catalog says %s is A/B but the device reports slot-count %d: wrong device or mode", c.p.Device.Codename, c.f.SlotCount)
	}
	if !c.p.Device.AB && ab {
		c.refuse("the device reports %d slots but the catalog says %s is A-only: wrong device", c.f.SlotCount, c.p.Device.Codename)
	}
	if ab {
		cur := c.f.CurrentSlot
		if cur != "a" && cur != "b" {
			c.refuse("the device reports current-slot %q; cannot choose a slot safely", c.f.CurrentSlot)
		}
		other := map[string]string{"a": "b", "b": "a"}[cur]
		switch c.p.Slot {
		case "", "other":
			c.slots = []string{other}
		case "a", "b":
			c.slots = []string{c.p.Slot}
		case "all":
			c.slots = []string{other, cur}
		}
		if fixed := superSlot(c.p); fixed != "" {
			var note, reason string
			if c.slots, note, reason = superSlots(c.p.Slot, cur, fixed); reason != "" {
				c.refuse("%s", reason)
			} else if note != "" {
				c.notes = append(c.notes, note)
			}
		}
	}
}

// images: every image is readable and is the one the bundle hashed.
func (c *checker) images() error {
	c.infos = map[string]imgInfo{}
	var paths []string
	for _, s := range c.p.Steps {
		if s.Op == plan.OpFlash {
			if _, seen := c.infos[s.Image]; !seen {
				paths = append(paths, s.Image)
				c.infos[s.Image] = imgInfo{}
			}
		}
	}
	sort.Strings(paths)
	for _, path := range paths {
		n, err := imageSize(path)
		if err != nil {
			c.refuse("image %s cannot be read: %v", path, err)
			continue
		}
		c.infos[path] = imgInfo{size: n}
	}
	for _, s := range c.p.Steps {
		if s.Op == plan.OpFlash && s.SHA256 != "" {
			h, err := image.FileSHA256(c.ctx, s.Image)
			if c.ctx.Err() != nil {
				return c.ctx.Err() // interrupted, not a reason to refuse
			}
			if err != nil {
				c.refuse("image %s: %v", s.Image, err)
			} else if !strings.EqualFold(h, s.SHA256) {
				c.refuse("image %s has sha256 %s, the bundle recorded %s: it changed or is corrupt", s.Image, h, s.SHA256)
			}
		}
	}
	return nil
}

// withSlot names the partitions a step writes: part with each slot to write, or part alone on A-only
// phones, for names that already carry a slot, and for partitions the phone says have none.
func (c *checker) withSlot(part string) []string {
	if !c.ab {
		return []string{part}
	}
	if strings.HasSuffix(part, "_a") || strings.HasSuffix(part, "_b") {
		return []string{part}
	}
	if v := getvar(c.ctx, c.d, "has-slot:"+part); v == "no" {
		return []string{part}
	}
	var out []string
	for _, sl := range c.slots {
		out = append(out, part+"_"+sl)
	}
	return out
}

// fits refuses an image bigger than its partition, by the size the phone reports or else the catalog's.
func (c *checker) fits(part string, size int64) {
	cp, found := c.p.Device.Partition(part) // A-only phones may name partitions xbl_a literally
	if !found {
		cp, found = c.p.Device.Partition(baseName(part))
	}
	psz, ok := partitionSize(getvar(c.ctx, c.d, "partition-size:"+part), cp.Size, c.p.Device.MediaTek())
	if !ok {
		if found && cp.Size > 0 {
			psz, ok = cp.Size, true
			c.notes = append(c.notes, fmt.Sprintf("%s: size from the catalog (%d), the device did not report it", part, cp.Size))
		}
	}
	c.f.PartitionSize[part] = psz
	switch {
	case !ok:
		c.refuse("the device does not report the size of %s and the catalog does not know it; cannot prove the image fits", part)
	case size > psz:
		c.refuse("%s is %d bytes but partition %s holds %d bytes", imageName(fileFor(c.p, part)), size, part, psz)
	}
}

// commands: the plan as fastboot commands for this phone (slots, sizes that fit, fastbootd for logical
// partitions, wipe, set_active, reboots).
func (c *checker) commands() []Command {
	var cmds []Command
	if c.cancelSnapshot {
		cmds = append(cmds, Command{Op: "snapshot-update"})
	}
	var physical, logical []plan.Step
	var tail []plan.Step
	for _, s := range c.p.Steps {
		switch {
		case s.Op == plan.OpFlash && s.Logical:
			logical = append(logical, s)
		case s.Op == plan.OpFlash || s.Op == plan.OpErase:
			physical = append(physical, s)
		case s.Op == plan.OpReboot || s.Op == plan.OpRebootBootloader || s.Op == plan.OpRebootFastboot || s.Op == plan.OpSetActive:
			tail = append(tail, s) // reboots and explicit slot changes come after every write
		case s.Op == plan.OpLock:
			c.notes = append(c.notes, "the ROM's script relocks the bootloader; romforge never relocks (with anything but untouched vendor-signed images that bricks Xiaomi phones): lock it yourself if you are sure")
		}
	}
	for _, s := range physical {
		for _, part := range c.withSlot(s.Partition) {
			cmd := Command{Op: s.Op, Partition: part}
			if s.Op == plan.OpFlash {
				cmd.Image, cmd.Size = s.Image, c.infos[s.Image].size
				c.fits(part, cmd.Size)
				if part == "super" && c.f.PartitionSize[part] > 0 {
					if err := checkSuperImage(s.Image, c.f.PartitionSize[part]); err != nil {
						c.refuse("%s cannot go to super: %v", imageName(s.Image), err)
					}
				}
			}
			cmds = append(cmds, cmd)
		}
	}
	if len(logical) > 0 {
		var total int64
		for _, s := range logical {
			total += c.infos[s.Image].size
		}
		if sup := c.p.Device.Super; sup != nil {
			limit := sup.Size
			for _, g := range sup.Groups {
				if limit == 0 || g.MaxSize < limit {
					limit = g.MaxSize
				}
			}
			if limit > 0 && total > limit {
				c.refuse("logical partitions need %d bytes but super's group holds %d", total, limit)
			}
		}
		// Always planned, also when the phone is in fastbootd already (Run then skips it): the commands
		// must not depend on the mode, or a journal written before the reboot would not match the plan
		// a resume computes after it.
		cmds = append(cmds, Command{Op: plan.OpRebootFastboot})
		for _, s := range logical {
			for _, part := range c.withSlot(s.Partition) {
				cmds = append(cmds, Command{Op: "resize-logical-partition", Partition: part, Size: c.infos[s.Image].size, Logical: true})
				cmds = append(cmds, Command{Op: plan.OpFlash, Partition: part, Image: s.Image, Size: c.infos[s.Image].size, Logical: true})
			}
		}
	}
	if c.p.Wipe {
		erased := map[string]bool{} // a ROM script that wipes already needs no second erase
		for _, cmd := range cmds {
			if cmd.Op == plan.OpErase {
				erased[cmd.Partition] = true
			}
		}
		if !erased["userdata"] {
			cmds = append(cmds, Command{Op: plan.OpErase, Partition: "userdata"})
		}
		// Only phones with dynamic partitions or FBE v2 have metadata; erasing a partition the phone
		// lacks fails the run after everything else was written.
		if !erased["metadata"] && (c.p.Device.Dynamic || getvar(c.ctx, c.d, "partition-size:metadata") != "") {
			cmds = append(cmds, Command{Op: plan.OpErase, Partition: "metadata"})
		}
	}
	if c.ab && len(c.slots) > 0 {
		cmds = append(cmds, Command{Op: plan.OpSetActive, Slot: c.slots[0]})
	}
	for _, s := range tail {
		if s.Op == plan.OpSetActive {
			continue // the slot written is activated above, after every write
		}
		if s.Op == plan.OpReboot && c.p.SkipReboot {
			continue
		}
		cmds = append(cmds, Command{Op: s.Op})
	}
	return cmds
}

func fileFor(p *plan.Plan, part string) string {
	for _, s := range p.Steps {
		if s.Op == plan.OpFlash && baseName(s.Partition) == baseName(part) {
			return s.Image
		}
	}
	return part
}
