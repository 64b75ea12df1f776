package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/fetch"
	"github.com/romforge/romforge/internal/failure"
)

var sourceFlags = []cli.Flag{
	&cli.StringFlag{Name: "device", Aliases: []string{"d"}, Usage: "device codename, alias or name"},
	&cli.StringFlag{Name: "source", Usage: "release source name from the catalog (default: all / the first)"},
	&cli.StringFlag{Name: "tag", Usage: "release tag (GitHub) or version (LineageOS API)"},
	&cli.BoolFlag{Name: "pre", Usage: "include pre-releases"},
	&cli.StringFlag{Name: "token", Usage: "GitHub token (default $GITHUB_TOKEN; never printed)", EnvVars: []string{"GITHUB_TOKEN"}},
	&cli.StringFlag{Name: "github-api", Usage: "GitHub API base URL (GitHub Enterprise, tests)"},
	&cli.BoolFlag{Name: "wait", Usage: "sleep until a GitHub rate limit resets instead of failing"},
}

func init() {
	register(&cli.Command{
		Name:   "releases",
		Usage:  "list community ROM builds for a device across its release sources",
		Flags:  sourceFlags,
		Action: runReleases,
	})
	register(&cli.Command{
		Name:  "fetch",
		Usage: "download a ROM build, verified (checksum, resume, cache, OTA signature); prints its path",
		Flags: append(append([]cli.Flag{}, sourceFlags...),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "directory for the file (default: the cache's downloads folder)"},
			&cli.StringFlag{Name: "url", Usage: "download this URL instead of a catalog source"},
			&cli.StringFlag{Name: "sha256", Usage: "expected SHA-256 of --url"},
			&cli.BoolFlag{Name: "allow-unverified", Usage: "accept builds without a checksum (prints a warning)"},
			&cli.BoolFlag{Name: "require-signature", Usage: "fail unless the OTA zip carries a valid whole-file signature"},
		),
		Action: runFetch,
	})
}

// sourcesFor builds the release sources of a device.
func sourcesFor(c *cli.Context, d *devices.Device) ([]fetch.Source, []devices.Source, error) {
	var out []fetch.Source
	var specs []devices.Source
	for _, s := range d.Sources {
		if c.String("source") != "" && s.Name != c.String("source") {
			continue
		}
		switch s.Kind {
		case "github":
			g, err := fetch.NewGitHub(s, fetch.GitHubOptions{Token: c.String("token"), API: c.String("github-api"), Wait: c.Bool("wait")})
			if err != nil {
				return nil, nil, err
			}
			out = append(out, g)
		case "lineage-api":
			out = append(out, fetch.NewLineage(s, nil))
		}
		specs = append(specs, s)
	}
	if len(out) == 0 {
		var names []string
		for _, s := range d.Sources {
			names = append(names, s.Name)
		}
		if c.String("source") != "" {
			return nil, nil, usagef("device %s has no source %q (sources: %s)", d.Codename, c.String("source"), strings.Join(names, ", "))
		}
		return nil, nil, usagef("device %s lists no release sources; use 'romforge fetch --url URL --sha256 HEX'", d.Codename)
	}
	return out, specs, nil
}

func lookupDevice(c *cli.Context) (*devices.Device, error) {
	if c.String("device") == "" {
		return nil, usagef("%s: --device is required", c.Command.Name)
	}
	cat, err := devices.Builtin()
	if err != nil {
		return nil, err
	}
	return cat.Lookup(c.String("device"))
}

func runReleases(c *cli.Context) error {
	e := envOf(c)
	d, err := lookupDevice(c)
	if err != nil {
		return err
	}
	srcs, _, err := sourcesFor(c, d)
	if err != nil {
		return err
	}
	var all []fetch.Build
	for _, s := range srcs {
		b, err := s.List(e.ctx, fetch.ListOptions{Tag: c.String("tag"), Pre: c.Bool("pre")})
		if err != nil {
			return err
		}
		all = append(all, b...)
	}
	if e.json {
		if all == nil {
			all = []fetch.Build{}
		}
		return e.printJSON(all)
	}
	tw := e.table()
	fmt.Fprintln(tw, e.bold("SOURCE\tROM\tVERSION\tDATE\tASSET\tSIZE\tCHECKSUM"))
	for _, b := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", b.Source, b.Family, b.Version, b.Date.Format("2006-01-02"), b.Asset, b.Size, b.Checksum.Kind)
	}
	return tw.Flush()
}

func runFetch(c *cli.Context) error {
	e := envOf(c)
	var b fetch.Build
	var pinned []string
	switch {
	case c.String("url") != "":
		name := filepath.Base(strings.SplitN(c.String("url"), "?", 2)[0])
		b = fetch.Build{Source: "url", Asset: name, URL: c.String("url"), Checksum: fetch.Checksum{Kind: "none"}}
		if h := c.String("sha256"); h != "" {
			b.Checksum = fetch.Checksum{Algo: "sha256", Value: strings.ToLower(h), Kind: "given"}
		}
	default:
		d, err := lookupDevice(c)
		if err != nil {
			return err
		}
		srcs, specs, err := sourcesFor(c, d)
		if err != nil {
			return err
		}
		src, spec := srcs[0], specs[0]
		builds, err := src.List(e.ctx, fetch.ListOptions{Tag: c.String("tag"), Pre: c.Bool("pre")})
		if err != nil {
			return err
		}
		if len(builds) == 0 {
			return failure.Kinded(failure.ErrIO, fmt.Errorf("fetch: source %s has no build for %s matching the asset pattern (see 'romforge releases --device %s')", src.Name(), d.Codename, d.Codename))
		}
		b, pinned = builds[0], spec.SignerSHA256
	}
	if c.Bool("allow-unverified") && b.Checksum.Value == "" && b.Checksum.Kind != "sidecar" {
		e.logf("warning: %s has no published checksum; it is downloaded UNVERIFIED", b.Asset)
	}
	dir := c.String("output")
	if dir == "" {
		dir = filepath.Join(e.cache, "downloads")
	}
	path, err := fetch.Download(e.ctx, b, fetch.DownloadOptions{Dir: dir, AllowUnverified: c.Bool("allow-unverified"), Progress: e.reporter()})
	if err != nil {
		return err
	}
	res := map[string]any{"path": path, "asset": b.Asset, "source": b.Source, "checksum": b.Checksum}
	if strings.HasSuffix(strings.ToLower(path), ".zip") {
		sig, err := fetch.VerifyOTA(path, pinned)
		switch {
		case errors.Is(err, fetch.ErrNoSignature):
			if c.Bool("require-signature") {
				return failure.Kinded(failure.ErrInvalid, fmt.Errorf("fetch: %s carries no whole-file signature and --require-signature was given", path))
			}
			e.logf("note: %s carries no whole-file signature", filepath.Base(path))
		case err != nil:
			return err
		default:
			res["signature"] = sig
			if sig.TestKey != "" {
				e.logf("warning: %s is signed with the public %s: anyone can sign with it", filepath.Base(path), sig.TestKey)
			}
			if c.Bool("require-signature") && len(pinned) > 0 && !sig.Pinned {
				return failure.Kinded(failure.ErrInvalid, fmt.Errorf("fetch: signer %s is not one the catalog pins for this source", sig.SignerSHA256))
			}
		}
	}
	if e.json {
		return e.printJSON(res)
	}
	fmt.Fprintln(e.stdout, path)
	return nil
}
