package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/bundle"
	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash"
	"github.com/romforge/romforge/flash/plan"
	"github.com/romforge/romforge/internal/failure"
)

// dialDevice connects to a fastboot device by serial ("tcp:HOST[:PORT]", "udp:…", or a USB serial).
// cmd_fastboot.go sets it (TCP, UDP, USB and exec transports); tests replace it.
var dialDevice func(ctx context.Context, serial string) (flash.Device, io.Closer, error)

// listDevices returns the serials of connected fastboot devices (for --all).
var listDevices func(ctx context.Context) ([]string, error)

// listUSBPorts names the connected fastboot phones by USB port (for --watch: a name that stays the same
// while the phone stays plugged in).
var listUSBPorts func(ctx context.Context) ([]string, error)

// planOptions are the flags that change which steps a loader plans (a Xiaomi ROM picks its script by
// them).
type planOptions struct {
	Wipe bool
	// Script is --script: "" (keep user data), all, except-storage or all-lock.
	Script string
	// Cache is the cache folder (--cache-dir), where archives are unpacked.
	Cache string
}

// planLoaders turn a TARGET into a plan; the first that accepts it wins (bundles here, Xiaomi ROMs in
// their own file).
var planLoaders = []func(target string, d *devices.Device, o planOptions) (*plan.Plan, bool, error){loadBundlePlan}

func loadBundlePlan(target string, d *devices.Device, o planOptions) (*plan.Plan, bool, error) {
	if _, err := os.Stat(filepath.Join(target, bundle.ManifestName)); err != nil {
		return nil, false, nil
	}
	if o.Script != "" {
		return nil, true, usagef("flash: --script chooses among a Xiaomi fastboot ROM's scripts; %s is a romforge bundle (use --wipe to erase user data)", target)
	}
	m, err := bundle.Read(target)
	if err != nil {
		return nil, true, err
	}
	if d == nil {
		cat, err := loadCatalog()
		if err != nil {
			return nil, true, err
		}
		if d, err = cat.Lookup(m.Device); err != nil {
			return nil, true, err
		}
	}
	p, err := bundle.Plan(target, m, d)
	return p, true, err
}

func init() {
	register(&cli.Command{
		Name:      "flash",
		Usage:     "flash a romforge bundle, a Xiaomi fastboot ROM or PARTITION=IMAGE pairs, after safety checks",
		ArgsUsage: "BUNDLE_DIR | XIAOMI_ROM | PARTITION=IMAGE...",
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "serial", Aliases: []string{"s"}, EnvVars: []string{"ANDROID_SERIAL"}, Usage: "phone: USB serial (or usb:SERIAL), tcp:HOST[:PORT] or udp:HOST[:PORT] (as fastboot -s); repeat it, or give a comma list, to flash several at once"},
			&cli.BoolFlag{Name: "all", Usage: "flash every fastboot phone on USB, plus any --serial, concurrently (shops)"},
			&cli.IntFlag{Name: "parallel", Usage: "with several phones: at most N flashed at once, the others wait (0: all at once)"},
			&cli.StringFlag{Name: "device", Aliases: []string{"d"}, Usage: "catalog device (needed for PARTITION=IMAGE pairs)"},
			&cli.StringFlag{Name: "slot", Usage: "a, b, all or other (A/B devices; default: the inactive slot, then activate it)"},
			&cli.BoolFlag{Name: "wipe", Usage: "erase userdata and metadata too (a Xiaomi fastboot ROM keeps user data without it)"},
			&cli.StringFlag{Name: "script", Usage: "Xiaomi fastboot ROM: all (flash_all, wipes data), except-storage (keeps data) or all-lock (refused: romforge never relocks)"},
			&cli.BoolFlag{Name: "skip-reboot", Usage: "do not reboot at the end"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print the exact command sequence; write nothing"},
			&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask for confirmation"},
			&cli.BoolFlag{Name: "resume", Usage: "continue an interrupted flash from its journal (after re-checking the device)"},
			&cli.BoolFlag{Name: "cancel-snapshot", Usage: "cancel a pending Virtual A/B snapshot update instead of refusing"},
			&cli.BoolFlag{Name: "assume-unlocked", Usage: "accept a device that does not report its lock state (old bootloaders)"},
			&cli.StringFlag{Name: "log-dir", Usage: "several phones: one transcript per phone here (default: a new folder under the cache's logs)"},
		}, batchFlags...),
		Action: runFlash,
	})
}

func buildPlan(c *cli.Context) (*plan.Plan, error) {
	var d *devices.Device
	if name := c.String("device"); name != "" {
		cat, err := loadCatalog()
		if err != nil {
			return nil, err
		}
		if d, err = cat.Lookup(name); err != nil {
			return nil, err
		}
	}
	args := c.Args().Slice()
	if len(args) == 0 {
		return nil, usagef("flash: give a bundle directory, a Xiaomi fastboot ROM, or PARTITION=IMAGE pairs")
	}
	var p *plan.Plan
	if strings.Contains(args[0], "=") {
		if d == nil {
			return nil, usagef("flash: PARTITION=IMAGE pairs need --device CODENAME")
		}
		var err error
		if p, err = plan.PairsPlan(d, args); err != nil {
			return nil, err
		}
	} else {
		if len(args) != 1 {
			return nil, usagef("flash: one TARGET at a time")
		}
		for _, load := range planLoaders {
			pl, ok, err := load(args[0], d, planOptions{Wipe: c.Bool("wipe"), Script: c.String("script"), Cache: envOf(c).cache})
			if err != nil {
				return nil, err
			}
			if ok {
				p = pl
				break
			}
		}
		if p == nil {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("flash: %s is neither a romforge bundle nor a Xiaomi fastboot ROM", args[0]))
		}
	}
	// --slot wins; without it a loader's own choice stands (a Xiaomi script's _ab flashes both slots).
	if s := c.String("slot"); s != "" || p.Slot == "" {
		p.Slot = s
	}
	p.Wipe = c.Bool("wipe")
	p.SkipReboot = c.Bool("skip-reboot")
	return p, nil
}

func runFlash(c *cli.Context) error {
	e := envOf(c)
	if wantsBatch(c) {
		return runFlashBatch(c, e)
	}
	p, err := buildPlan(c)
	if err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	popt := flash.PreflightOptions{CancelSnapshot: c.Bool("cancel-snapshot"), AssumeUnlocked: c.Bool("assume-unlocked")}
	if dialDevice == nil {
		return failure.Kinded(failure.ErrIO, errors.New("flash: this build has no fastboot transport"))
	}
	serial := ""
	if list, err := flash.SplitSerials(c.StringSlice("serial")); err != nil {
		return err
	} else if len(list) == 1 {
		serial = list[0]
	}
	if serial == "" {
		if listDevices != nil {
			if list, err := listDevices(e.ctx); err == nil && len(list) == 1 {
				serial = list[0]
			} else if err == nil && len(list) > 1 {
				return usagef("flash: %d devices connected (%s): pick one with --serial or use --all", len(list), strings.Join(list, ", "))
			}
		}
		if serial == "" {
			return failure.Kinded(failure.ErrIO, errors.New("flash: no fastboot device found: connect one, or give --serial tcp:HOST:PORT / udp:HOST:PORT"))
		}
	}
	return flashOne(c, e, p, popt, serial)
}

// flashOne runs pre-flight, confirmation and the flash on one device.
func flashOne(c *cli.Context, e *env, p *plan.Plan, popt flash.PreflightOptions, serial string) error {
	ctx, log := e.ctx, e.stdout
	dev, closer, err := dialDevice(ctx, serial)
	if err != nil {
		if c.Bool("dry-run") && e.json {
			return e.printJSON(map[string]any{"serial": serial, "dry_run": true, "reachable": false, "error": err.Error(), "steps": p.Steps, "notes": p.Notes})
		}
		if c.Bool("dry-run") {
			fmt.Fprintf(log, "dry run: no device reachable at %s (%v); the plan without device facts:\n", serial, err)
			for _, n := range p.Notes {
				fmt.Fprintf(log, "note: %s\n", n)
			}
			for _, s := range p.Steps {
				fmt.Fprintf(log, "  %s %s %s\n", s.Op, s.Partition, s.Image)
			}
			return nil
		}
		return failure.Kinded(failure.ErrIO, fmt.Errorf("flash: connecting to %s: %w", serial, err))
	}
	defer func() { closer.Close() }()
	chk, err := flash.Preflight(ctx, dev, p, popt)
	if err != nil {
		return err
	}
	result := map[string]any{"serial": serial, "facts": chk.Facts, "commands": chk.Commands, "notes": chk.Notes, "dry_run": c.Bool("dry-run")}
	if e.json {
		// The plan is an event; the one stdout document comes at the end (docs/json.md).
		emitJSONLine(e.stderr, map[string]any{"event": "plan", "serial": serial, "facts": chk.Facts, "commands": chk.Commands, "notes": chk.Notes})
	} else {
		fmt.Fprintf(log, "device %s: %s, serial %s, unlocked %s\n", serial, chk.Facts.Product, chk.Facts.Serial, chk.Facts.Unlocked)
		for _, n := range chk.Notes {
			fmt.Fprintf(log, "note: %s\n", n)
		}
		fmt.Fprintln(log, "plan:")
		for _, cmd := range chk.Commands {
			fmt.Fprintf(log, "  %s\n", cmd)
		}
	}
	if c.Bool("dry-run") {
		if e.json {
			return e.printJSON(result)
		}
		if !e.json {
			fmt.Fprintln(log, "dry run: nothing was written")
		}
		return nil
	}
	if !c.Bool("yes") {
		if !isTerminal(os.Stdin) || e.json {
			return failure.Kinded(failure.ErrRefused, errors.New("flash: not confirmed: pass --yes for unattended runs (nothing was written)"))
		}
		fmt.Fprint(e.stderr, "Flash these images? Type 'yes' to continue: ")
		ans, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if strings.TrimSpace(strings.ToLower(ans)) != "yes" {
			return failure.Kinded(failure.ErrRefused, errors.New("flash: not confirmed (nothing was written)"))
		}
	}
	journal := filepath.Join(e.cache, "journals", sanitize(chk.Facts.Serial)+".json")
	os.MkdirAll(filepath.Dir(journal), 0o755)
	opt := flash.RunOptions{
		Progress: e.reporter(),
		Journal:  journal,
		Resume:   c.Bool("resume"),
		Reconnect: func(ctx context.Context) (flash.Device, error) {
			closer.Close()
			deadline := time.Now().Add(90 * time.Second)
			for {
				d, cl, err := dialDevice(ctx, serial)
				if err == nil {
					closer = cl
					return d, nil
				}
				if time.Now().After(deadline) || ctx.Err() != nil {
					return nil, fmt.Errorf("device %s did not come back: %w", serial, err)
				}
				time.Sleep(500 * time.Millisecond)
			}
		},
	}
	if e.json {
		opt.Progress = nil
		opt.Events = func(ev flash.Event) { emitJSONLine(e.stderr, stepEvent(ev)) }
	}
	if err := flash.Run(ctx, dev, p, chk, opt); err != nil {
		return err
	}
	if e.json {
		result["flashed"] = true
		return e.printJSON(result)
	} else {
		fmt.Fprintf(log, "flashed %s (%s)\n", serial, chk.Facts.Product)
	}
	return nil
}

var jsonMu sync.Mutex

// stepEvent is a flash step as a "step" event of docs/json.md: its phase is start, done, error or skip.
func stepEvent(ev flash.Event) map[string]any {
	m := map[string]any{"event": "step", "phase": ev.Kind, "time": ev.Time, "serial": ev.Serial, "index": ev.Index,
		"total": ev.Total, "command": ev.Command}
	if ev.Error != "" {
		m["error"] = ev.Error
	}
	if ev.DownloadBytes > 0 {
		m["download_bytes"], m["download_seconds"], m["flash_seconds"] = ev.DownloadBytes, ev.DownloadSeconds, ev.FlashSeconds
	}
	return m
}

func emitJSONLine(w io.Writer, v any) {
	b, _ := json.Marshal(v)
	jsonMu.Lock()
	w.Write(append(b, '\n'))
	jsonMu.Unlock()
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}
