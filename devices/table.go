package devices

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/romforge/romforge/internal/failure"
)

// ErrFastbootd says a getvar all came from fastbootd (userspace), which answers for logical partitions
// and whole disks instead of the bootloader's partition table.
var ErrFastbootd = failure.Kinded(failure.ErrInvalid, errors.New("this getvar all is from fastbootd (is-userspace: yes), which reports logical partitions and whole disks, not the partition table: run 'fastboot reboot bootloader' and read it there"))

// TableFromVars derives the physical partition table of d's bootloader from its getvar all answers
// (as fastboot.ParseGetvarDump or Client.GetVarAll return them): every partition-size:NAME, a slotted
// pair NAME_a/NAME_b as one entry on A/B phones, partition-type as the filesystem. Logical partitions and
// snapshots (NAME-cow) are left out. The answers must be from a phone of d's product.
func TableFromVars(d *Device, vars map[string]string) ([]Partition, error) {
	if vars["is-userspace"] == "yes" {
		return nil, ErrFastbootd
	}
	product := vars["product"]
	if product == "" || !slices.ContainsFunc(d.Products, func(p string) bool { return strings.EqualFold(p, product) }) {
		return nil, failure.Kinded(failure.ErrRefused, fmt.Errorf("these answers are from a phone whose product is %q, not %s (%s): a table is only taken from the device it describes", product, d.Codename, strings.Join(d.Products, ", ")))
	}
	raw := map[string]string{}
	for k, v := range vars {
		name, ok := strings.CutPrefix(k, "partition-size:")
		if !ok || strings.HasSuffix(name, "-cow") || vars["is-logical:"+name] == "yes" {
			continue
		}
		if name == "" || strings.ContainsAny(name, " \t/\\:") || len(name) > 72 {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("partition-size:%.80q: not a partition name", name))
		}
		raw[name] = strings.TrimSpace(v)
	}
	if len(raw) == 0 {
		return nil, failure.Kinded(failure.ErrInvalid, errors.New("the answers hold no partition-size: save the whole 'fastboot getvar all', not single variables"))
	}
	// Qualcomm's ABL writes 0x-hex; MediaTek's lk writes hex without 0x. Bare digits are hex when the
	// phone is a MediaTek one or another bare answer has hex letters; otherwise they cannot be read.
	bareHex := d.MediaTek()
	for _, v := range raw {
		if !strings.HasPrefix(strings.ToLower(v), "0x") && strings.ContainsAny(v, "abcdefABCDEF") {
			bareHex = true
		}
	}
	sizes := map[string]int64{}
	for name, v := range raw {
		digits, prefixed := strings.CutPrefix(strings.ToLower(v), "0x")
		if !prefixed && !bareHex {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("partition-size:%s is %q, without 0x: hex or decimal cannot be told apart on this phone", name, v))
		}
		n, err := strconv.ParseInt(digits, 16, 64)
		if err != nil || n <= 0 {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("partition-size:%s is %.40q, not a size", name, v))
		}
		sizes[name] = n
	}
	var out []Partition
	for name, size := range sizes {
		base, slot := name, ""
		if d.AB {
			if b, ok := strings.CutSuffix(name, "_a"); ok {
				base, slot = b, "a"
			} else if b, ok := strings.CutSuffix(name, "_b"); ok {
				base, slot = b, "b"
			}
		}
		p := Partition{Name: base, Size: size, FS: fsOfType(vars["partition-type:"+name])}
		switch slot {
		case "":
			p.NoSlot = d.AB
		case "a":
			other, ok := sizes[base+"_b"]
			if !ok {
				return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("%s has no %s_b: an A/B phone reports both slots", name, base))
			}
			if other != size {
				return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("%s is %d bytes but %s_b is %d: the slots of one partition differ", name, size, base, other))
			}
		case "b":
			if _, ok := sizes[base+"_a"]; !ok {
				return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("%s has no %s_a: an A/B phone reports both slots", name, base))
			}
			continue // listed with _a
		}
		if _, clash := sizes[base]; clash && slot != "" {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("both %s and %s_a/_b are reported", base, base))
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Partition) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// fsOfType maps a partition-type answer to the catalog's filesystems ("raw data" is MediaTek's raw).
func fsOfType(t string) string {
	switch strings.TrimSpace(t) {
	case "ext4", "f2fs", "erofs":
		return strings.TrimSpace(t)
	}
	return "raw"
}

// WithTable returns a copy of d with a partition table merged in: a listed partition takes the table's
// size and slot layout (keeping the catalog's filesystem when it names one), a partition the catalog
// lacks is added, logical partitions are kept. parts must be physical.
func (d *Device) WithTable(parts []Partition, t *Table) (*Device, error) {
	cp := *d
	cp.Partitions = slices.Clone(d.Partitions)
	index := map[string]int{}
	for i, p := range cp.Partitions {
		index[p.Name] = i
	}
	for _, p := range parts {
		if p.Logical {
			return nil, fmt.Errorf("partition %s: a table lists physical partitions; logical ones come from the ROM", p.Name)
		}
		i, ok := index[p.Name]
		if !ok {
			index[p.Name] = len(cp.Partitions)
			cp.Partitions = append(cp.Partitions, p)
			continue
		}
		have := &cp.Partitions[i]
		if have.Logical {
			return nil, fmt.Errorf("partition %s is logical in the catalog but physical in the table: is the table from this device?", p.Name)
		}
		have.Size, have.NoSlot = p.Size, p.NoSlot
		if have.FS == "" || have.FS == "raw" {
			have.FS = p.FS
		}
	}
	cp.Table = t
	if err := cp.validate(); err != nil {
		return nil, err
	}
	return &cp, nil
}

// TableDiff is one way a table differs from the catalog.
type TableDiff struct {
	Partition string `json:"partition"`
	Catalog   int64  `json:"catalog"` // 0: not in the catalog, or no size there
	Table     int64  `json:"table"`   // 0: not in the table
}

// DiffTable lists where parts differs from d's physical partitions: sizes that disagree, partitions
// only one side knows.
func (d *Device) DiffTable(parts []Partition) []TableDiff {
	var out []TableDiff
	seen := map[string]bool{}
	for _, p := range parts {
		seen[p.Name] = true
		c, ok := d.Partition(p.Name)
		switch {
		case !ok:
			out = append(out, TableDiff{Partition: p.Name, Table: p.Size})
		case !c.Logical && c.Size != p.Size:
			out = append(out, TableDiff{Partition: p.Name, Catalog: c.Size, Table: p.Size})
		}
	}
	for _, c := range d.Partitions {
		if !c.Logical && !seen[c.Name] {
			out = append(out, TableDiff{Partition: c.Name, Catalog: c.Size})
		}
	}
	return out
}

// TableFile renders a user catalog file that adds parts and t to the device codename, in the catalog's
// one-line-per-partition style (JSON strings are valid YAML, which keeps odd names and sources safe).
func TableFile(codename string, parts []Partition, t *Table) []byte {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var b bytes.Buffer
	fmt.Fprintf(&b, "# A partition table for %s, written by 'romforge devices table'. In the user catalog\n", codename)
	fmt.Fprintf(&b, "# folder it is merged into the builtin device (romforge devices show %s).\n", codename)
	fmt.Fprintf(&b, "codename: %s\npartitions:\n", q(codename))
	for _, p := range parts {
		fmt.Fprintf(&b, "  - {name: %s, size: %d, fs: %s", q(p.Name), p.Size, q(p.FS))
		if p.NoSlot {
			b.WriteString(", no_slot: true")
		}
		b.WriteString("}\n")
	}
	fmt.Fprintf(&b, "table:\n  from: %s\n  source: %s\n  complete: %v\n", q(t.From), q(t.Source), t.Complete)
	return b.Bytes()
}
