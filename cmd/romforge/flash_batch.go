package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/flash"
	"github.com/romforge/romforge/flash/status"
	"github.com/romforge/romforge/internal/failure"
)

// batchFlags are the flash command's flags for many phones at once (cmd_flash.go lists them).
var batchFlags = []cli.Flag{
	&cli.StringFlag{Name: "serials-file", Usage: "flash the phones listed in FILE (one USB serial, tcp:HOST[:PORT] or udp:HOST[:PORT] a line; # comments); with --watch it is re-read as phones come and go"},
	&cli.BoolFlag{Name: "watch", Usage: "station mode: keep running and flash each phone as it appears (USB hotplug, lines added to --serials-file) until Ctrl-C"},
	&cli.StringFlag{Name: "http", Usage: "serve a live status page at ADDR (loopback only, e.g. 127.0.0.1:8080)"},
}

// wantsBatch reports whether the flash command runs the batch path: several phones, a bundles folder,
// a serials file, station mode or a status page.
func wantsBatch(c *cli.Context) bool {
	if c.Bool("all") || c.Bool("watch") || c.String("serials-file") != "" || c.String("http") != "" {
		return true
	}
	if c.Args().Len() == 1 && flash.IsBundlesFolder(c.Args().First()) {
		return true
	}
	serials, err := flash.SplitSerials(c.StringSlice("serial"))
	return err != nil || len(serials) > 1
}

// batchCandidates are the plans phones may get: every bundle of a bundles folder, or the one TARGET.
func batchCandidates(c *cli.Context) ([]flash.Candidate, error) {
	args := c.Args().Slice()
	if len(args) == 1 && flash.IsBundlesFolder(args[0]) {
		if c.String("device") != "" {
			return nil, usagef("flash: --device does not go with a bundles folder: each phone gets the bundle for its product")
		}
		cat, err := loadCatalog()
		if err != nil {
			return nil, err
		}
		cands, err := flash.LoadBundles(args[0], cat)
		if err != nil {
			return nil, err
		}
		for _, cd := range cands {
			cd.Plan.Slot, cd.Plan.Wipe, cd.Plan.SkipReboot = c.String("slot"), c.Bool("wipe"), c.Bool("skip-reboot")
			if err := cd.Plan.Validate(); err != nil {
				return nil, fmt.Errorf("flash: bundle %s: %w", cd.Name, err)
			}
		}
		return cands, nil
	}
	p, err := buildPlan(c)
	if err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	name := p.Codename
	if len(args) == 1 {
		name = filepath.Base(args[0])
	}
	return []flash.Candidate{{Name: name, Plan: p}}, nil
}

// observers fans a phone's row out to every view.
type observers []func(flash.Status)

func (o observers) update(s flash.Status) {
	for _, f := range o {
		f(s)
	}
}

// runFlashBatch flashes many phones, each with the plan for its product, showing one live line per
// phone, and ends with a summary (a JSON document with --json). Exit: 0 all ok or skipped, 3 some
// refused and none failed, 5 some failed.
func runFlashBatch(c *cli.Context, e *env) error {
	cands, err := batchCandidates(c)
	if err != nil {
		return err
	}
	if !c.Bool("yes") && !c.Bool("dry-run") {
		return failure.Kinded(failure.ErrRefused, errors.New("flash: flashing several phones runs unattended: pass --yes (nothing was written)"))
	}
	if dialDevice == nil {
		return failure.Kinded(failure.ErrIO, errors.New("flash: this build has no fastboot transport"))
	}
	serials, err := flash.SplitSerials(c.StringSlice("serial"))
	if err != nil {
		return err
	}
	logDir := c.String("log-dir")
	if logDir == "" {
		logDir = filepath.Join(e.cache, "logs", time.Now().UTC().Format("20060102-150405"))
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return failure.Kinded(failure.ErrIO, fmt.Errorf("flash: log folder: %w", err))
	}
	cat, err := loadCatalog()
	if err != nil {
		return err
	}
	opt := flash.BatchOptions{
		Dial:       dialDevice,
		Preflight:  flash.PreflightOptions{CancelSnapshot: c.Bool("cancel-snapshot"), AssumeUnlocked: c.Bool("assume-unlocked")},
		DryRun:     c.Bool("dry-run"),
		LogDir:     logDir,
		JournalDir: filepath.Join(e.cache, "journals"),
		Resume:     c.Bool("resume"),
		Catalog:    cat,
		Parallel:   c.Int("parallel"),
	}
	if opt.Parallel < 0 {
		return usagef("flash: --parallel %d: give 0 (all at once) or how many phones at a time", opt.Parallel)
	}

	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var obs observers
	var tallies []func(flash.Tally)
	var live *liveView
	switch {
	case e.json:
		jv := &jsonView{w: e.stderr}
		obs = append(obs, jv.Update)
	case e.quiet:
	case isTerminal(e.stderr):
		live = newLiveView(e.stderr, e.color)
		defer live.Close()
		obs = append(obs, live.Update)
		if c.Bool("watch") {
			tallies = append(tallies, live.SetTally)
		}
	default:
		pv := &plainView{w: e.stderr}
		obs = append(obs, pv.Update)
	}
	if addr := c.String("http"); addr != "" {
		board := status.NewBoard("romforge station")
		got, done, err := status.Serve(ctx, addr, board)
		if err != nil {
			return err
		}
		defer func() { cancel(); <-done }()
		obs = append(obs, board.Update)
		tallies = append(tallies, board.SetTally)
		e.logf("status page: http://%s/", got)
	}
	opt.Observe = obs.update
	e.logf("transcripts: %s", logDir)

	var sum *flash.Summary
	if c.Bool("watch") {
		sopt := flash.StationOptions{
			Batch: opt, Candidates: cands, Serials: serials, SerialsFile: c.String("serials-file"),
			ListUSB: listUSBPorts,
			OnResult: func(s flash.Status, t flash.Tally) {
				for _, f := range tallies {
					f(t)
				}
				switch {
				case e.json:
					emitJSONLine(e.stderr, struct {
						Event string `json:"event"`
						flash.Tally
					}{"summary", t})
				case live == nil && !e.quiet:
					fmt.Fprintf(e.stderr, "station: ok %d, refused %d, skipped %d, failed %d\n", t.OK, t.Refused, t.Skipped, t.Failed)
				}
			},
			Warn: func(msg string) {
				if e.json {
					emitJSONLine(e.stderr, map[string]string{"event": "warning", "message": "station: " + msg})
					return
				}
				e.logf("station: %s", msg)
			},
		}
		if sopt.SerialsFile != "" {
			if _, err := flash.ReadSerialsFile(sopt.SerialsFile); err != nil {
				return err
			}
		}
		e.logf("station: watching %s; Ctrl-C stops", watchedWhat(sopt))
		sum = flash.Station(ctx, sopt)
	} else {
		targets, err := flash.Targets(ctx, flash.TargetOptions{Serials: serials, SerialsFile: c.String("serials-file"), All: c.Bool("all"), ListUSB: listDevices})
		if err != nil {
			return err
		}
		if len(targets) == 0 {
			return failure.Kinded(failure.ErrIO, errors.New("flash: no phones to flash: none on USB and none named; connect them, or give --serial tcp:HOST:PORT / udp:HOST:PORT or --serials-file"))
		}
		sum = flash.Batch(ctx, targets, cands, opt)
		var t flash.Tally
		for _, p := range sum.Phones {
			switch p.State {
			case flash.ResultOK:
				t.OK++
			case flash.ResultRefused:
				t.Refused++
			case flash.ResultSkipped:
				t.Skipped++
			default:
				t.Failed++
			}
		}
		for _, f := range tallies {
			f(t)
		}
	}
	if live != nil {
		live.Close()
	}
	if e.json {
		err := sum.Err()
		e.printJSON(struct {
			*flash.Summary
			LogDir   string `json:"log_dir"`
			ExitCode int    `json:"exit_code"`
		}{sum, logDir, exitCode(err)})
		return err
	}
	if !e.quiet || sum.Err() != nil {
		fmt.Fprintln(e.stdout)
		writeSummary(e.stdout, sum, e.bold)
		fmt.Fprintf(e.stdout, "transcripts: %s\n", logDir)
	}
	return sum.Err()
}

func watchedWhat(o flash.StationOptions) string {
	var w []string
	if o.ListUSB != nil {
		w = append(w, "USB")
	}
	if o.SerialsFile != "" {
		w = append(w, o.SerialsFile)
	}
	if len(o.Serials) > 0 {
		w = append(w, strings.Join(o.Serials, ", "))
	}
	if len(w) == 0 {
		return "nothing (give --serials-file or connect USB phones)"
	}
	return strings.Join(w, " and ")
}
