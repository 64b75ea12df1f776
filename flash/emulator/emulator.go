package emulator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/internal/failure"
)

// Options configure a new emulated phone. Locked, Anti and Serial only apply when the state directory
// is new; an existing state keeps what it had (as a phone does across reboots).
type Options struct {
	// StateDir holds state.json, the partition files and the download buffer (required).
	StateDir string
	// Locked starts the bootloader locked.
	Locked bool
	// AllowUnlock lets `flashing unlock` / `oem unlock` succeed.
	AllowUnlock bool
	// Anti is the anti-rollback value answered by getvar anti / rollback_ver ("" → "1" when the
	// catalog says the device enforces anti-rollback).
	Anti string
	// MaxDownloadSize overrides the catalog's max-download-size.
	MaxDownloadSize int64
	// Serial overrides the serial number derived from the codename and the state directory.
	Serial string
	// BatteryVoltage in mV (default 4100); BatteryLow makes battery-soc-ok answer no.
	BatteryVoltage int
	BatteryLow     bool
	// Fault is injected from the start (SetFault changes it later).
	Fault Fault
	// Logf receives a line per command when set (the CLI's log).
	Logf func(format string, args ...any)
}

// Device is one emulated phone. Its methods are safe for concurrent use; commands from several
// connections are processed one at a time.
type Device struct {
	dev          *devices.Device
	opt          Options
	dir          string
	maxDL        int64
	phys         map[string]partInfo
	logicalBases map[string]bool

	bufMu      sync.Mutex // the download buffer; taken before mu
	mu         sync.Mutex
	st         state
	fault      Fault
	dropBase   int64 // download bytes received when the drop fault was armed
	received   int64 // download bytes received in total
	staged     int64 // bytes in the download buffer, -1 when empty
	transcript []string
	stats      Stats

	writes atomic.Int64
}

// Stats sum up the phone's side of the transfers, the same for every client: the data phase of a
// download runs from the DATA reply to the last byte received (the rate= fault caps it), a flash from
// the command to its reply.
type Stats struct {
	Downloads     int           `json:"downloads"`
	DownloadBytes int64         `json:"download_bytes"`
	DataTime      time.Duration `json:"data_ns"`
	Flashes       int           `json:"flashes"`
	FlashTime     time.Duration `json:"flash_ns"`
}

// Stats returns the transfer statistics since the emulator started.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

type partInfo struct {
	size int64
	typ  string
}

// state is what survives restarts, in state.json.
type state struct {
	Serial     string           `json:"serialno"`
	Unlocked   bool             `json:"unlocked"`
	Anti       string           `json:"anti,omitempty"`
	Slot       string           `json:"current_slot,omitempty"`
	Userspace  bool             `json:"is_userspace"`
	Logical    map[string]int64 `json:"logical_partitions,omitempty"`
	Snapshot   string           `json:"snapshot_update_status,omitempty"`
	Writes     int64            `json:"writes"`
	Mutations  int64            `json:"mutations"`
	Unbootable map[string]bool  `json:"unbootable,omitempty"`
	// Changes counts the flashes and erases of each partition: what a test (or a shop) checks to prove
	// a partition, userdata above all, was left alone.
	Changes map[string]int64 `json:"changes,omitempty"`
}

const stateFile = "state.json"

// Defaults for partitions the catalog lists without a size, and for the ones every phone has.
const (
	defaultPartSize = 4 << 30
	userdataSize    = 64 << 30
)

// New makes (or reopens) the phone in opt.StateDir.
func New(dev *devices.Device, opt Options) (*Device, error) {
	if dev == nil {
		return nil, failure.Kinded(failure.ErrUsage, errors.New("emulator: no device given"))
	}
	if opt.StateDir == "" {
		return nil, failure.Kinded(failure.ErrUsage, errors.New("emulator: a state directory is required"))
	}
	dir, err := filepath.Abs(opt.StateDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "partitions"), 0o755); err != nil {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("emulator: %w", err))
	}
	d := &Device{dev: dev, opt: opt, dir: dir, staged: -1, fault: opt.Fault, phys: map[string]partInfo{}, logicalBases: map[string]bool{}}
	d.maxDL = dev.MaxDownloadSize
	if opt.MaxDownloadSize > 0 {
		d.maxDL = opt.MaxDownloadSize
	}
	if d.maxDL <= 0 {
		d.maxDL = 256 << 20
	}
	d.buildPartitions()
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &d.st); err != nil {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("emulator: %s: %w (remove the state directory to start afresh)", filepath.Join(dir, stateFile), err))
		}
	case errors.Is(err, os.ErrNotExist):
		d.st = d.freshState()
	default:
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("emulator: %w", err))
	}
	if d.st.Logical == nil {
		d.st.Logical = map[string]int64{}
	}
	d.writes.Store(d.st.Writes)
	if err := d.save(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Device) freshState() state {
	st := state{Unlocked: !d.opt.Locked, Serial: d.opt.Serial, Snapshot: "none", Logical: map[string]int64{}}
	if st.Serial == "" {
		sum := sha256.Sum256([]byte(d.dev.Codename + "\x00" + d.dir))
		st.Serial = "RF" + strings.ToUpper(hex.EncodeToString(sum[:4]))
	}
	if d.dev.AntiRollback.Var != "" || d.dev.AntiRollback.Enforced {
		st.Anti = d.opt.Anti
		if st.Anti == "" {
			st.Anti = "1"
		}
	}
	if d.dev.AB {
		st.Slot = "a"
	}
	if d.dev.Dynamic {
		for base := range d.logicalBases {
			for _, n := range d.slotted(base) {
				st.Logical[n] = 0
			}
		}
	}
	return st
}

func (d *Device) slotted(base string) []string {
	if d.dev.AB {
		return []string{base + "_a", base + "_b"}
	}
	return []string{base}
}

func (d *Device) buildPartitions() {
	for _, p := range d.dev.Partitions {
		if p.Logical {
			d.logicalBases[p.Name] = true
			continue
		}
		size := p.Size
		if size <= 0 {
			size = defaultPartSize
		}
		typ := p.FS
		if typ == "" {
			typ = "raw"
		}
		names := d.slotted(p.Name)
		if p.NoSlot {
			names = []string{p.Name}
		}
		for _, n := range names {
			d.phys[n] = partInfo{size: size, typ: typ}
		}
	}
	add := func(name string, size int64, typ string) {
		if _, ok := d.phys[name]; !ok {
			d.phys[name] = partInfo{size: size, typ: typ}
		}
	}
	add("userdata", userdataSize, "f2fs")
	add("misc", 1<<20, "raw")
	if d.dev.Dynamic {
		add("metadata", 64<<20, "ext4")
		size := int64(defaultPartSize * 2)
		if d.dev.Super != nil && d.dev.Super.Size > 0 {
			size = d.dev.Super.Size
		}
		add("super", size, "raw")
	} else if !d.dev.AB {
		add("cache", 256<<20, "ext4")
	}
}

// superLimit is how many bytes of logical partitions super holds.
func (d *Device) superLimit() int64 {
	s := d.dev.Super
	if s == nil {
		return d.phys["super"].size
	}
	limit := s.Size - 2*s.MetadataSize*int64(max(s.MetadataSlots, 1)) - 1<<20
	for _, g := range s.Groups {
		if g.MaxSize > 0 && g.MaxSize < limit {
			limit = g.MaxSize
		}
	}
	return limit
}

// save writes state.json atomically; d.mu is held or the device is not shared yet.
func (d *Device) save() error {
	d.st.Writes = d.writes.Load()
	b, err := json.MarshalIndent(&d.st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(d.dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return failure.Kinded(failure.ErrIO, fmt.Errorf("emulator: saving state: %w", err))
	}
	return os.Rename(tmp, filepath.Join(d.dir, stateFile))
}

// Writes is the number of bytes written to partitions since the state directory was made.
func (d *Device) Writes() int64 { return d.writes.Load() }

// Mutations counts every command that changed the phone (flash, erase, set_active, lock changes,
// logical partition changes, snapshot cancel).
func (d *Device) Mutations() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st.Mutations
}

// Changes returns how many times each partition was flashed or erased since the state directory was
// made (partitions never touched are absent).
func (d *Device) Changes() map[string]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]int64, len(d.st.Changes))
	for k, v := range d.st.Changes {
		out[k] = v
	}
	return out
}

// changedLocked records a flash or erase of part; d.mu is held.
func (d *Device) changedLocked(part string) {
	if d.st.Changes == nil {
		d.st.Changes = map[string]int64{}
	}
	d.st.Changes[part]++
}

// Serial is the phone's serial number.
func (d *Device) Serial() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st.Serial
}

// PartitionPath is the file that holds a partition's bytes (it may not exist before the first write).
func (d *Device) PartitionPath(name string) string {
	return filepath.Join(d.dir, "partitions", filepath.Base(name)+".img")
}

// SetFault replaces the injected faults; a drop-after fault counts from now.
func (d *Device) SetFault(f Fault) {
	d.mu.Lock()
	d.fault = f
	d.dropBase = d.received
	d.mu.Unlock()
}

// Transcript returns the messages exchanged so far ("-> cmd", "<- reply", "   [N bytes]").
func (d *Device) Transcript() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.transcript...)
}

// ResetTranscript forgets the transcript.
func (d *Device) ResetTranscript() {
	d.mu.Lock()
	d.transcript = nil
	d.mu.Unlock()
}

// Unlocked reports the lock state.
func (d *Device) Unlocked() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st.Unlocked
}

// Userspace reports whether the phone is in fastbootd.
func (d *Device) Userspace() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st.Userspace
}

// CurrentSlot is "a" or "b" ("" on non-A/B phones).
func (d *Device) CurrentSlot() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st.Slot
}

// lookup finds a partition visible in the current mode: physical ones always, logical ones in fastbootd.
func (d *Device) lookup(name string) (partInfo, bool, bool) {
	if p, ok := d.phys[name]; ok {
		return p, false, true
	}
	if d.st.Userspace {
		if size, ok := d.st.Logical[name]; ok {
			return partInfo{size: size, typ: d.logicalType(name)}, true, true
		}
	}
	return partInfo{}, false, false
}

func (d *Device) logicalType(name string) string {
	base := strings.TrimSuffix(strings.TrimSuffix(name, "_a"), "_b")
	if p, ok := d.dev.Partition(base); ok && p.FS != "" {
		return p.FS
	}
	return "raw"
}

// resolve maps a partition name to the one a command acts on: names without a slot suffix get the
// current slot on A/B phones, as bootloaders do.
func (d *Device) resolve(name string) (string, partInfo, bool, bool) {
	if p, logical, ok := d.lookup(name); ok {
		return name, p, logical, true
	}
	if d.dev.AB && d.st.Slot != "" {
		n := name + "_" + d.st.Slot
		if p, logical, ok := d.lookup(n); ok {
			return n, p, logical, true
		}
	}
	return name, partInfo{}, false, false
}

// hasSlot answers has-slot:NAME: yes, no, or unknown partition.
func (d *Device) hasSlot(base string) (string, bool) {
	if !d.dev.AB {
		if _, _, ok := d.lookup(base); ok {
			return "no", true
		}
		return "", false
	}
	if _, _, ok := d.lookup(base + "_a"); ok {
		return "yes", true
	}
	if _, _, ok := d.lookup(base); ok {
		return "no", true
	}
	return "", false
}

// visibleNames lists the partitions of the current mode, sorted.
func (d *Device) visibleNames() []string {
	var names []string
	for n := range d.phys {
		names = append(names, n)
	}
	if d.st.Userspace {
		for n := range d.st.Logical {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Var answers one getvar the way the phone would; ok is false for an unknown variable.
func (d *Device) Var(name string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.getvar(name)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (d *Device) getvar(name string) (string, bool) {
	st := &d.st
	switch name {
	case "version":
		return "0.4", true
	case "version-bootloader":
		return "RFEMU-" + d.dev.Codename + "-1.0", true
	case "version-baseband":
		return "RFEMU-MPSS-1.0", true
	case "product":
		if len(d.dev.Products) > 0 {
			return d.dev.Products[0], true
		}
		return d.dev.Codename, true
	case "serialno":
		return st.Serial, true
	case "secure":
		return "yes", true
	case "unlocked":
		return yesNo(st.Unlocked), true
	case "max-download-size":
		return fmt.Sprintf("0x%x", d.maxDL), true
	case "is-userspace":
		return yesNo(st.Userspace), true
	case "battery-soc-ok":
		return yesNo(!d.opt.BatteryLow), true
	case "battery-voltage":
		mv := d.opt.BatteryVoltage
		if mv == 0 {
			mv = 4100
			if d.opt.BatteryLow {
				mv = 3300
			}
		}
		return fmt.Sprint(mv), true
	case "off-mode-charge":
		return "0", true
	case "romforge-writes":
		return fmt.Sprint(d.writes.Load()), true
	case "romforge-mutations":
		return fmt.Sprint(st.Mutations), true
	}
	if d.dev.AB {
		switch name {
		case "slot-count":
			return "2", true
		case "current-slot":
			return st.Slot, true
		case "slot-successful:a", "slot-successful:b":
			return yesNo(name[len(name)-1:] == st.Slot), true
		case "slot-unbootable:a", "slot-unbootable:b":
			return yesNo(st.Unbootable[name[len(name)-1:]]), true
		case "slot-retry-count:a", "slot-retry-count:b":
			return "7", true
		}
	}
	if d.dev.Dynamic {
		switch name {
		case "super-partition-name":
			return "super", true
		case "snapshot-update-status":
			return st.Snapshot, true
		}
	}
	if v := d.dev.AntiRollback.Var; v != "" && name == v {
		return st.Anti, true
	}
	if p, ok := strings.CutPrefix(name, "romforge-changes:"); ok {
		// How often a partition was flashed or erased: proof from outside the process (romforge
		// emulate) that, say, userdata was left alone.
		if _, _, ok := d.lookup(p); ok {
			return fmt.Sprint(st.Changes[p]), true
		}
		return "", false
	}
	if p, ok := strings.CutPrefix(name, "partition-size:"); ok {
		if pi, _, ok := d.lookup(p); ok {
			if d.dev.MediaTek() && !st.Userspace {
				return fmt.Sprintf("%x", pi.size), true // lk's style: hex without 0x
			}
			return fmt.Sprintf("0x%x", pi.size), true
		}
		return "", false
	}
	if p, ok := strings.CutPrefix(name, "partition-type:"); ok {
		if pi, _, ok := d.lookup(p); ok {
			return pi.typ, true
		}
		return "", false
	}
	if p, ok := strings.CutPrefix(name, "has-slot:"); ok {
		return d.hasSlot(p)
	}
	if p, ok := strings.CutPrefix(name, "is-logical:"); ok && st.Userspace {
		if _, logical, ok := d.lookup(p); ok {
			return yesNo(logical), true
		}
		return "", false
	}
	return "", false
}

// allVars lists "name:value" lines for getvar:all, in a stable order.
func (d *Device) allVars() []string {
	simple := []string{"version", "version-bootloader", "version-baseband", "product", "serialno", "secure",
		"unlocked", "max-download-size", "is-userspace", "battery-soc-ok", "battery-voltage", "off-mode-charge",
		"slot-count", "current-slot", "slot-successful:a", "slot-successful:b", "slot-unbootable:a",
		"slot-unbootable:b", "slot-retry-count:a", "slot-retry-count:b", "super-partition-name",
		"snapshot-update-status", d.dev.AntiRollback.Var}
	var out []string
	for _, n := range simple {
		if n == "" {
			continue
		}
		if v, ok := d.getvar(n); ok {
			out = append(out, n+":"+v)
		}
	}
	bases := map[string]bool{}
	for _, n := range d.visibleNames() {
		base := strings.TrimSuffix(strings.TrimSuffix(n, "_a"), "_b")
		if d.dev.AB && base != n {
			bases[base] = true
		} else {
			bases[n] = true
		}
		for _, pre := range []string{"partition-size:", "partition-type:", "is-logical:"} {
			if v, ok := d.getvar(pre + n); ok {
				out = append(out, pre+n+":"+v)
			}
		}
	}
	var bl []string
	for b := range bases {
		bl = append(bl, b)
	}
	sort.Strings(bl)
	for _, b := range bl {
		if v, ok := d.getvar("has-slot:" + b); ok {
			out = append(out, "has-slot:"+b+":"+v)
		}
	}
	return out
}

func (d *Device) logf(format string, args ...any) {
	if d.opt.Logf != nil {
		d.opt.Logf(format, args...)
	}
}
