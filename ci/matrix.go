package ci

import (
	"fmt"
	"strings"

	"github.com/romforge/romforge/devices"
)

// Entry is one matrix job.
type Entry struct {
	Device string `json:"device"`
	Name   string `json:"name"`
	Source string `json:"source"`
	Family string `json:"rom"`
	AB     bool   `json:"ab"`
	FS     string `json:"fs"`
	// Asset is the prefix of every release asset the job publishes (<device>-<source>); AssetName
	// appends the build's version and what the file is, so names never clash across jobs.
	Asset string `json:"asset"`
}

// Matrix is GitHub Actions' strategy.matrix shape: {"include": [...]}.
type Matrix struct {
	Include []Entry `json:"include"`
}

// Options filter the matrix.
type Options struct {
	// Devices limits it to these codenames/aliases/names (empty: every device with a source).
	Devices []string
	// Source limits it to sources with this name.
	Source string
}

// MaxJobs is GitHub Actions' limit on jobs one matrix may generate.
const MaxJobs = 256

// Build makes the matrix: one entry per device and release source. A device named explicitly that
// has no (matching) source is an error rather than a silently skipped job.
func Build(cat *devices.Catalog, opt Options) (*Matrix, error) {
	var devs []*devices.Device
	explicit := false
	for _, n := range opt.Devices {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		explicit = true
		d, err := cat.Lookup(n)
		if err != nil {
			return nil, err
		}
		devs = append(devs, d)
	}
	if !explicit {
		devs = cat.Devices
	}
	m := &Matrix{Include: []Entry{}}
	seen := map[string]bool{}
	for _, d := range devs {
		fs := "raw"
		if p, ok := d.Partition("system"); ok {
			fs = p.FS
		}
		if err := ambiguousSources(d); err != nil {
			return nil, err
		}
		n := 0
		for _, s := range d.Sources {
			if opt.Source != "" && s.Name != opt.Source {
				continue
			}
			n++
			key := d.Codename + "\x00" + s.Name
			if seen[key] {
				continue // the same device named twice
			}
			seen[key] = true
			m.Include = append(m.Include, Entry{Device: d.Codename, Name: d.DisplayName(), Source: s.Name, Family: s.Family, AB: d.AB, FS: fs,
				Asset: AssetPrefix(d.Codename, s.Name)})
		}
		if explicit && n == 0 {
			if opt.Source != "" {
				return nil, fmt.Errorf("ci: device %s has no source %q", d.Codename, opt.Source)
			}
			return nil, fmt.Errorf("ci: device %s lists no release sources (add one in a user catalog file)", d.Codename)
		}
	}
	if len(m.Include) == 0 {
		return nil, fmt.Errorf("ci: no device/source pair matches (devices %v, source %q)", opt.Devices, opt.Source)
	}
	if len(m.Include) > MaxJobs {
		return nil, fmt.Errorf("ci: %d jobs, more than the %d a GitHub Actions matrix may have; split with --devices or --source", len(m.Include), MaxJobs)
	}
	return m, nil
}

// Sanitize makes s safe inside a GitHub release asset name (GitHub rewrites other characters itself,
// which could make two names equal): every byte outside [A-Za-z0-9._-] becomes '_', byte by byte, so
// the workflows' `tr -c 'A-Za-z0-9._-' '_'` gives the same result; "" becomes "unknown".
func Sanitize(s string) string {
	if s == "" {
		return "unknown"
	}
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// AssetPrefix is the asset-name prefix of one device and source. Codenames never contain '-', so the
// first '-' ends the device part.
func AssetPrefix(device, source string) string {
	return Sanitize(device) + "-" + Sanitize(source)
}

// AssetName is the release asset name of one job's file: <device>-<source>-<version>-<what>, e.g.
// alioth-crdroid-12.0-manifest.json (build-roms.yml forms the same names in shell).
func AssetName(prefix, version, what string) string {
	return prefix + "-" + Sanitize(version) + "-" + what
}

// ambiguousSources finds two sources of one device where one name is the other's plus "-…": their
// assets could then collide (source "x" with version "y-1" against source "x-y" with version "1").
func ambiguousSources(d *devices.Device) error {
	for _, a := range d.Sources {
		for _, b := range d.Sources {
			if a.Name != b.Name && strings.HasPrefix(Sanitize(b.Name), Sanitize(a.Name)+"-") {
				return fmt.Errorf("ci: device %s: source names %q and %q would make release asset names ambiguous; rename one", d.Codename, a.Name, b.Name)
			}
		}
	}
	return nil
}
