package devices

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/romforge/romforge/internal/failure"
)

// UserDir is the user catalog directory: $XDG_CONFIG_HOME/romforge/devices, else
// ~/.config/romforge/devices ("" when neither can be found).
func UserDir() string {
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "romforge", "devices")
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return filepath.Join(h, ".config", "romforge", "devices")
	}
	return ""
}

// Default is the embedded catalog plus the user catalog directory (UserDir), when it exists.
func Default() (*Catalog, error) {
	b, err := Builtin()
	if err != nil {
		return nil, err
	}
	dir := UserDir()
	if dir == "" {
		return b, nil
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return b, nil
	}
	return b.WithUser(os.DirFS(dir), dir)
}

// WithUser returns a new catalog: c plus the *.yaml files of fsys (origin names them in messages
// and in each entry's Origin). A file is either a whole device, loaded as strictly as the embedded
// ones and not allowed to reuse a known codename or alias, or an addition to a known device with only
// `codename:`, `sources:` (appended after the device's own; names must not clash) and a partition table
// (`partitions:` with `table:`, merged into the device's partitions).
// c itself is not modified.
func (c *Catalog) WithUser(fsys fs.FS, origin string) (*Catalog, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := &Catalog{Devices: make([]*Device, 0, len(c.Devices)+len(names))}
	index := map[string]int{}
	for _, d := range c.Devices {
		cp := *d
		cp.Sources = append([]Source(nil), d.Sources...)
		index[d.Codename] = len(out.Devices)
		out.Devices = append(out.Devices, &cp)
	}
	for _, n := range names {
		where := filepath.Join(origin, n)
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		add, isAdd, err := parseAddition(where, b)
		if err != nil {
			return nil, userErr(err)
		}
		if isAdd {
			i, ok := index[add.Codename]
			if !ok {
				return nil, userErr(fmt.Errorf("%s: adds sources to %q, which is not a known codename ('romforge devices' lists them); a new device needs the whole device description", where, add.Codename))
			}
			d := out.Devices[i]
			for _, s := range add.Sources {
				s.Origin = where
				d.Sources = append(d.Sources, s)
			}
			if add.Table != nil || len(add.Partitions) > 0 {
				if add.Table == nil {
					return nil, userErr(fmt.Errorf("%s: partitions need a table: entry saying where their sizes come from ('romforge devices table' writes both)", where))
				}
				add.Table.Origin = where
				merged, err := d.WithTable(add.Partitions, add.Table)
				if err != nil {
					return nil, userErr(fmt.Errorf("%s: %w", where, err))
				}
				*d = *merged
			}
			probe := *d
			probe.file = ""
			if err := probe.validate(); err != nil {
				return nil, userErr(fmt.Errorf("%s: %w", where, err))
			}
			continue
		}
		d, err := Parse(n, b)
		if err != nil {
			return nil, userErr(fmt.Errorf("%s: %w", origin, err))
		}
		d.file, d.Origin = where, where
		for i := range d.Sources {
			d.Sources[i].Origin = where
		}
		index[d.Codename] = len(out.Devices)
		out.Devices = append(out.Devices, d)
	}
	if err := out.validate(); err != nil {
		return nil, userErr(err)
	}
	return out, nil
}

func userErr(err error) error {
	return failure.Kinded(failure.ErrInvalid, fmt.Errorf("user catalog: %w (fix or remove the file)", err))
}

// addition is a user file that adds to a known device: sources, and a partition table (a shop's
// phones' own getvar all answers, as 'romforge devices table' writes them).
type addition struct {
	Codename   string      `yaml:"codename"`
	Sources    []Source    `yaml:"sources"`
	Partitions []Partition `yaml:"partitions"`
	Table      *Table      `yaml:"table"`
}

// parseAddition decodes b strictly as an addition when its top-level keys are only codename and
// sources; isAdd is false for anything else (a whole device).
func parseAddition(where string, b []byte) (addition, bool, error) {
	var top map[string]any
	if err := yaml.Unmarshal(b, &top); err != nil {
		return addition{}, false, fmt.Errorf("%s: %v", where, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	for k := range top {
		if k != "codename" && k != "sources" && k != "partitions" && k != "table" {
			return addition{}, false, nil
		}
	}
	// A whole device has partitions too; an addition of a table has no other device fields.
	if _, ok := top["partitions"]; ok {
		if _, ok := top["table"]; !ok {
			return addition{}, false, nil
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var a addition
	if err := dec.Decode(&a); err != nil {
		if errors.Is(err, io.EOF) {
			return a, false, fmt.Errorf("%s: empty device file", where)
		}
		return a, false, fmt.Errorf("%s: %v", where, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if a.Codename == "" || len(a.Sources) == 0 && a.Table == nil {
		return a, false, fmt.Errorf("%s: an addition needs codename and at least one source or a partition table", where)
	}
	return a, true, nil
}
