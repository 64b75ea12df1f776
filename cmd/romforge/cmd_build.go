package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/fetch"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/pipeline"
)

func init() {
	register(&cli.Command{
		Name:      "build",
		Usage:     "fetch or open a ROM, patch it, rebuild its images and write a flashable bundle",
		ArgsUsage: "[--release [TAG]]",
		Flags: append(append([]cli.Flag{}, sourceFlags...),
			&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "ROM file or folder (A/B payload zip, block/file OTA zip, Xiaomi fastboot ROM, folder of images)"},
			&cli.BoolFlag{Name: "release", Usage: "fetch the device's newest release (or the TAG given after it) first"},
			&cli.StringSliceFlag{Name: "set", Usage: "patch set name or YAML file (repeatable; default xiaomi-hardened)"},
			&cli.StringFlag{Name: "fs", Value: "keep", Usage: "filesystem of rebuilt images: keep, ext4 or erofs"},
			&cli.StringFlag{Name: "verity", Value: "disable", Usage: "disable (set vbmeta flags), resign (with --key) or keep"},
			&cli.StringFlag{Name: "key", Usage: "AVB signing key (PEM) for --verity resign"},
			&cli.StringFlag{Name: "super", Value: "auto", Usage: "dynamic devices: auto (one super.img, flashed from the bootloader, slot a) or none (logical images flashed through fastbootd to the inactive slot)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "bundle folder to create"},
			&cli.BoolFlag{Name: "force", Usage: "replace an existing bundle folder (only once the new bundle is complete)"},
			&cli.BoolFlag{Name: "allow-unverified", Usage: "with --release: accept a build without a published checksum"},
			maxImageSizeFlag,
		),
		Action: runBuild,
	})
}

func runBuild(c *cli.Context) error {
	e := envOf(c)
	d, err := lookupDevice(c)
	if err != nil {
		return err
	}
	input, url := c.String("input"), ""
	switch {
	case c.Bool("release") && input != "":
		return usagef("build: give --input or --release, not both")
	case c.Bool("release"):
		if err := needArgs(c, 0, 1, "at most one TAG after --release"); err != nil {
			return err
		}
		tag := c.String("tag")
		if c.NArg() == 1 {
			tag = c.Args().First()
		}
		srcs, _, err := sourcesFor(c, d)
		if err != nil {
			return err
		}
		// The sources in catalog order, as fetch: an unreachable one falls back to the next.
		get := func(ctx context.Context, b fetch.Build) (string, error) {
			warnUnverified(c, e, b)
			e.logf("fetching %s %s (%s)", b.Source, b.Version, b.Asset)
			return fetch.Download(ctx, b, fetch.DownloadOptions{Dir: filepath.Join(e.cache, "downloads"), AllowUnverified: c.Bool("allow-unverified"), Progress: e.reporter()})
		}
		path, served, skipped, err := fetch.First(e.ctx, srcs, fetch.ListOptions{Tag: tag, Pre: c.Bool("pre")}, get)
		for _, s := range skipped {
			if err == nil {
				e.logf("warning: source %s did not serve a build (%v); used the next", s.Source, s.Err)
			}
		}
		if err != nil {
			return err
		}
		input, url = path, served.URL
	case input == "":
		return usagef("build: give --input FILE|DIR or --release [TAG]")
	default:
		if err := needArgs(c, 0, 0, "no positional arguments (use --input)"); err != nil {
			return err
		}
	}
	names := c.StringSlice("set")
	if len(names) == 0 {
		names = []string{"xiaomi-hardened"}
	}
	sets, err := loadSets(names)
	if err != nil {
		return err
	}
	ctx, err := sizeLimitContext(e.ctx, c, d)
	if err != nil {
		return err
	}
	res, err := pipeline.Run(ctx, pipeline.Options{
		Device: d, Input: input, SourceURL: url, Sets: sets, FS: c.String("fs"), Verity: c.String("verity"), Super: c.String("super"),
		Key: c.String("key"), Out: c.String("output"), Force: c.Bool("force"), Version: currentVersion().Version, Progress: e.reporter(),
		Logf: e.logf,
	})
	if err != nil {
		return err
	}
	m := res.Manifest
	if res.Hardening != nil {
		warnBootCritical(e, res.Hardening)
	}
	if e.json {
		if err := e.printJSON(map[string]any{"bundle": c.String("output"), "manifest": m, "hardening": res.Hardening, "timings_seconds": res.Timings}); err != nil {
			return err
		}
		return buildLeft(res)
	}
	fmt.Fprintf(e.stdout, "bundle %s for %s (%s)\n", c.String("output"), d.Codename, d.DisplayName())
	fmt.Fprintf(e.stdout, "  patch sets: %s — %d removed, %d added, %d modified\n", strings.Join(m.Sets, ", "), res.Report.Removed, res.Report.Added, res.Report.Changed)
	if res.Before != nil && res.After != nil {
		fmt.Fprintf(e.stdout, "  audit: %d finding(s) before, %d after\n", len(res.Before.Findings), len(res.After.Findings))
	}
	for _, im := range m.Images {
		mark := ""
		if im.Modified {
			mark = " (rebuilt)"
		}
		fmt.Fprintf(e.stdout, "  %-12s %-6s %12d bytes%s\n", im.Partition, im.Format, im.Size, mark)
	}
	if m.RecoveryZip != "" {
		fmt.Fprintf(e.stdout, "  recovery zip: %s\n", m.RecoveryZip)
	}
	for _, n := range m.Notes {
		fmt.Fprintf(e.stdout, "  note: %s\n", n)
	}
	var stages []string
	for k := range res.Timings {
		stages = append(stages, k)
	}
	sort.Strings(stages)
	var ts []string
	for _, k := range stages {
		ts = append(ts, fmt.Sprintf("%s %.1fs", k, res.Timings[k]))
	}
	fmt.Fprintf(e.stdout, "  time: %s\n", strings.Join(ts, ", "))
	printHardening(e, res.Hardening)
	fmt.Fprintf(e.stdout, "flash it with: romforge flash %s\n", c.String("output"))
	return buildLeft(res)
}

// buildLeft fails a build (exit 1, a check found problems) when the built images still hold findings
// nothing accepts; the bundle is written either way so they can be inspected.
func buildLeft(res *pipeline.Result) error {
	if res.Hardening != nil {
		if err := res.Hardening.Err("build: the built images are not hardened"); err != nil {
			return fmt.Errorf("%w; see the hardening section of manifest.json", err)
		}
		return nil
	}
	if res.After != nil && !res.After.Clean() {
		return failure.Kinded(failure.ErrFindings, fmt.Errorf("build: the rebuilt images still audit dirty (%d findings); see manifest.json", len(res.After.Findings)))
	}
	return nil
}
