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

// Build makes the matrix: one entry per device and release source.
func Build(cat *devices.Catalog, opt Options) (*Matrix, error) {
	var devs []*devices.Device
	if len(opt.Devices) == 0 {
		devs = cat.Devices
	} else {
		for _, n := range opt.Devices {
			d, err := cat.Lookup(strings.TrimSpace(n))
			if err != nil {
				return nil, err
			}
			devs = append(devs, d)
		}
	}
	m := &Matrix{Include: []Entry{}}
	for _, d := range devs {
		fs := "raw"
		if p, ok := d.Partition("system"); ok {
			fs = p.FS
		}
		for _, s := range d.Sources {
			if opt.Source != "" && s.Name != opt.Source {
				continue
			}
			m.Include = append(m.Include, Entry{Device: d.Codename, Name: d.DisplayName(), Source: s.Name, Family: s.Family, AB: d.AB, FS: fs})
		}
	}
	if len(m.Include) == 0 {
		return nil, fmt.Errorf("ci: no device/source pair matches (devices %v, source %q)", opt.Devices, opt.Source)
	}
	return m, nil
}
