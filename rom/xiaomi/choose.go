package xiaomi

import (
	"errors"
	"fmt"
	"strings"

	"github.com/romforge/romforge/internal/failure"
)

// Script families a user may name (--script); each is a .sh or a .bat in real ROMs.
const (
	ScriptAll           = "all"            // flash_all: wipes user data
	ScriptExceptStorage = "except-storage" // flash_all_except_storage (older ROMs: …_except_data_storage): keeps it
	ScriptAllLock       = "all-lock"       // flash_all_lock: relocks the bootloader, never run
)

// family lists the file names of a script family, preferred first. Shell before batch: both are
// parsed the same way and real ROMs ship both with the same steps.
var family = map[string][]string{
	ScriptAll:           {"flash_all.sh", "flash_all.bat"},
	ScriptExceptStorage: {"flash_all_except_storage.sh", "flash_all_except_storage.bat", "flash_all_except_data_storage.sh", "flash_all_except_data_storage.bat"},
	ScriptAllLock:       {"flash_all_lock.sh", "flash_all_lock.bat"},
}

// Choice is the script steps a flash runs and why they were chosen.
type Choice struct {
	// Script names the file the steps came from.
	Script string `json:"script"`
	Steps  []Step `json:"steps"`
	// KeepsData says no step erases, formats or overwrites userdata or metadata.
	KeepsData bool `json:"keeps_data"`
	// Dropped are the steps removed to keep user data.
	Dropped []Step   `json:"dropped,omitempty"`
	Notes   []string `json:"notes,omitempty"`
}

// ErrRelock refuses --script all-lock: relocking after anything but untouched vendor images bricks
// Xiaomi phones, and romforge never relocks.
var ErrRelock = errors.New("romforge never relocks a bootloader")

// dataPartitions hold the user's data: what flash_all wipes and flash_all_except_storage leaves alone.
var dataPartitions = map[string]bool{"userdata": true, "metadata": true}

// DestroysData reports a step that erases, formats or overwrites user data.
func DestroysData(s Step) bool {
	switch s.Op {
	case OpWipe:
		return true
	case OpErase, OpFormat, OpFlash:
		return dataPartitions[strings.ToLower(s.Partition)] // bootloaders may match names case-insensitively
	}
	return false
}

// findScript returns the first script of a family the ROM has.
func (r *ROM) findScript(fam string) (string, *Script) {
	for _, n := range family[fam] {
		if sc, ok := r.Scripts[n]; ok {
			return n, sc
		}
	}
	return "", nil
}

// Choose picks the steps of a flash. User data is kept unless wipe is set or the user names a script
// (script "" or except-storage): flash_all_except_storage when the ROM has it, else the default script
// with its userdata/metadata erase, format, flash and -w steps dropped (each said in Notes). Naming
// "all" runs flash_all as written; "all-lock" is refused (ErrRelock, exit 3). Scripts are never run.
func (r *ROM) Choose(script string, wipe bool) (*Choice, error) {
	switch script {
	case "", ScriptAll, ScriptExceptStorage:
	case ScriptAllLock:
		return nil, failure.Kinded(failure.ErrRefused, fmt.Errorf("xiaomi: --script all-lock relocks the bootloader: %w (relocking after a flash bricks Xiaomi phones unless every image is untouched and vendor-signed); use --script all or except-storage, and lock it yourself with 'fastboot flashing lock' if you are sure (nothing was written)", ErrRelock))
	default:
		return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("xiaomi: --script %q is not one of all, except-storage, all-lock", script))
	}
	var name string
	var sc *Script
	switch {
	case script == ScriptAll || (script == "" && wipe):
		if name, sc = r.findScript(ScriptAll); sc == nil && script == "" {
			name, sc = r.DefaultScript, r.Scripts[r.DefaultScript]
		}
	default:
		name, sc = r.findScript(ScriptExceptStorage)
	}
	c := &Choice{Script: name}
	if sc == nil {
		if script == ScriptAll {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("xiaomi: the ROM has no flash_all.sh or flash_all.bat for --script all (it has %s)", strings.Join(sortedKeys(r.Scripts), ", ")))
		}
		// No except-storage script: derive it from the default one.
		name, sc = r.DefaultScript, r.Scripts[r.DefaultScript]
		if sc == nil {
			return nil, failure.Kinded(failure.ErrInvalid, errors.New("xiaomi: the ROM has no flash_all script: nothing to plan (is this an extracted fastboot ROM with flash_all.sh beside images/?)"))
		}
		c.Script = name
		c.Notes = append(c.Notes, fmt.Sprintf("the ROM has no flash_all_except_storage script: planning %s without the steps that wipe user data", name))
	}
	keep := script == ScriptExceptStorage || (script == "" && !wipe)
	for _, s := range sc.Steps {
		if keep && DestroysData(s) {
			c.Dropped = append(c.Dropped, s)
			c.Notes = append(c.Notes, fmt.Sprintf("user data kept: dropped %s line %d (%s) — pass --wipe or --script all to erase it", name, s.Line, describe(s)))
			continue
		}
		c.Steps = append(c.Steps, s)
	}
	c.KeepsData = true
	for _, s := range c.Steps {
		if DestroysData(s) {
			c.KeepsData = false
		}
	}
	switch {
	case c.KeepsData && len(c.Dropped) == 0:
		c.Notes = append(c.Notes, fmt.Sprintf("user data kept: %s (pass --wipe or --script all to erase it)", name))
	case !c.KeepsData:
		c.Notes = append(c.Notes, fmt.Sprintf("%s erases user data, as asked", name))
	}
	return c, nil
}

// describe renders a step as its fastboot command.
func describe(s Step) string {
	switch s.Op {
	case OpWipe:
		return "fastboot -w"
	case OpFlash:
		return "fastboot flash " + s.Partition + " " + s.Image
	}
	return "fastboot " + s.Op + " " + s.Partition
}
