package main

import (
	"context"
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
	&cli.StringFlag{Name: "source", Usage: "a catalog source name (default: all, in catalog order), or a source of your own: github:OWNER/REPO[:ASSET_REGEX], ota-json:URL or ota-json:OWNER/REPO/PATH[@REF]"},
	&cli.StringFlag{Name: "tag", Usage: "release tag (GitHub), or version or file name (JSON sources)"},
	&cli.BoolFlag{Name: "pre", Usage: "include pre-releases"},
	&cli.StringFlag{Name: "token", Usage: "GitHub token (default $GITHUB_TOKEN; never printed)", EnvVars: []string{"GITHUB_TOKEN"}},
	&cli.StringFlag{Name: "github-api", Usage: "GitHub API base URL (GitHub Enterprise, tests)"},
	&cli.BoolFlag{Name: "wait", Usage: "sleep until a GitHub rate limit resets instead of failing"},
}

func init() {
	register(&cli.Command{
		Name:   "releases",
		Usage:  "list community ROM builds for a device across its release sources (a failed source is a warning while another answers)",
		Flags:  sourceFlags,
		Action: runReleases,
	})
	register(&cli.Command{
		Name:  "fetch",
		Usage: "download a ROM build, verified (checksum, resume, cache, OTA signature), trying the device's sources in catalog order; prints its path",
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

// loadCatalog is the embedded catalog plus the user's ($XDG_CONFIG_HOME/romforge/devices).
func loadCatalog() (*devices.Catalog, error) { return devices.Default() }

// sourcesFor builds the release sources of a device (d may be nil when --source names a source of
// the user's own), in catalog order.
func sourcesFor(c *cli.Context, d *devices.Device) ([]fetch.Source, []devices.Source, error) {
	opt := fetch.Options{GitHub: fetch.GitHubOptions{Token: c.String("token"), API: c.String("github-api"), Wait: c.Bool("wait")}}
	want := c.String("source")
	spec, isSpec, err := fetch.ParseSpec(want)
	if err != nil {
		return nil, nil, err
	}
	var specs []devices.Source
	switch {
	case isSpec:
		specs = []devices.Source{spec}
	case d == nil:
		return nil, nil, usagef("%s: give --device, or --source github:OWNER/REPO / ota-json:URL", c.Command.Name)
	default:
		for _, s := range d.Sources {
			if want == "" || s.Name == want {
				specs = append(specs, s)
			}
		}
	}
	if len(specs) == 0 {
		var names []string
		for _, s := range d.Sources {
			names = append(names, s.Name)
		}
		if want != "" {
			return nil, nil, usagef("device %s has no source %q (sources: %s; or give github:OWNER/REPO / ota-json:URL)", d.Codename, want, strings.Join(names, ", "))
		}
		return nil, nil, usagef("device %s lists no release sources; give one with --source github:OWNER/REPO or --source ota-json:URL, add one in %s, or use 'romforge fetch --url URL --sha256 HEX'", d.Codename, userCatalogHint())
	}
	out := make([]fetch.Source, 0, len(specs))
	for _, s := range specs {
		src, err := fetch.Open(s, opt)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, src)
	}
	return out, specs, nil
}

func userCatalogHint() string {
	if d := devices.UserDir(); d != "" {
		return d
	}
	return "$XDG_CONFIG_HOME/romforge/devices"
}

// deviceForSources looks the device up; with a --source of the user's own it is optional.
func deviceForSources(c *cli.Context) (*devices.Device, error) {
	if c.String("device") == "" {
		if _, isSpec, _ := fetch.ParseSpec(c.String("source")); isSpec {
			return nil, nil
		}
	}
	return lookupDevice(c)
}

func lookupDevice(c *cli.Context) (*devices.Device, error) {
	if c.String("device") == "" {
		return nil, usagef("%s: --device is required", c.Command.Name)
	}
	cat, err := loadCatalog()
	if err != nil {
		return nil, err
	}
	return cat.Lookup(c.String("device"))
}

func runReleases(c *cli.Context) error {
	e := envOf(c)
	d, err := deviceForSources(c)
	if err != nil {
		return err
	}
	srcs, _, err := sourcesFor(c, d)
	if err != nil {
		return err
	}
	all, failed, err := fetch.ListAll(e.ctx, srcs, fetch.ListOptions{Tag: c.String("tag"), Pre: c.Bool("pre")})
	for _, f := range failed {
		if err == nil {
			e.logf("warning: source %s did not answer (%v); listing the others", f.Source, f.Err)
		}
	}
	if err != nil {
		if len(failed) > 1 {
			return err
		}
		return fmt.Errorf("releases: %w", err)
	}
	for _, b := range all {
		if b.Checksum.Weak() {
			e.logf("warning: %s (%s) is published with %s only, which proves no more than an intact transfer", b.Asset, b.Source, b.Checksum.Algo)
		}
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
		sum := b.Checksum.Kind
		if b.Checksum.Algo != "" {
			sum += " " + b.Checksum.Algo
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", b.Source, b.Family, b.Version, b.Date.Format("2006-01-02"), b.Asset, b.Size, sum)
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
		d, err := deviceForSources(c)
		if err != nil {
			return err
		}
		srcs, specs, err := sourcesFor(c, d)
		if err != nil {
			return err
		}
		dir := outputDir(c, e)
		get := func(ctx context.Context, b fetch.Build) (string, error) {
			warnUnverified(c, e, b)
			return fetch.Download(ctx, b, fetch.DownloadOptions{Dir: dir, AllowUnverified: c.Bool("allow-unverified"), Progress: e.reporter()})
		}
		path, served, skipped, err := fetch.First(e.ctx, srcs, fetch.ListOptions{Tag: c.String("tag"), Pre: c.Bool("pre")}, get)
		for _, s := range skipped {
			if err == nil {
				e.logf("warning: source %s did not serve a build (%v); trying the next", s.Source, s.Err)
			}
		}
		if err != nil {
			return err
		}
		for _, s := range specs {
			if s.Name == served.Source {
				pinned = s.SignerSHA256
			}
		}
		e.logf("served by source %s: %s %s", served.Source, served.Version, served.Asset)
		return finishFetch(c, e, served, path, pinned)
	}
	warnUnverified(c, e, b)
	path, err := fetch.Download(e.ctx, b, fetch.DownloadOptions{Dir: outputDir(c, e), AllowUnverified: c.Bool("allow-unverified"), Progress: e.reporter()})
	if err != nil {
		return err
	}
	return finishFetch(c, e, b, path, pinned)
}

func outputDir(c *cli.Context, e *env) string {
	if dir := c.String("output"); dir != "" {
		return dir
	}
	return filepath.Join(e.cache, "downloads")
}

func warnUnverified(c *cli.Context, e *env, b fetch.Build) {
	switch {
	case c.Bool("allow-unverified") && b.Checksum.Value == "" && b.Checksum.Kind != "sidecar":
		e.logf("warning: %s has no published checksum; it is downloaded UNVERIFIED", b.Asset)
	case b.Checksum.Weak():
		e.logf("warning: %s is published with %s only: that proves an intact transfer, not who made the file (prefer a source with sha256; --require-signature checks the OTA signature)", b.Asset, b.Checksum.Algo)
	}
}

// finishFetch checks the OTA signature of a downloaded zip and prints the result.
func finishFetch(c *cli.Context, e *env, b fetch.Build, path string, pinned []string) error {
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
