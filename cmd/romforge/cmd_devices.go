package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/devices"
)

func init() {
	register(&cli.Command{
		Name:   "devices",
		Usage:  "list the handsets romforge knows",
		Action: runDevices,
		Subcommands: []*cli.Command{{
			Name:      "show",
			Usage:     "show one device (codename, alias or marketing name, case-insensitive)",
			ArgsUsage: "NAME",
			Action:    runDevicesShow,
		}},
	})
}

// originOf marks a catalog entry: builtin, user (a file of the user catalog), or builtin+user when
// the user catalog added sources to a built-in device.
func originOf(d *devices.Device) string {
	if d.Origin != "builtin" {
		return "user"
	}
	for _, s := range d.Sources {
		if s.Origin != "builtin" {
			return "builtin+user"
		}
	}
	return "builtin"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func antiString(a devices.AntiRollback) string {
	if !a.Enforced {
		return "no"
	}
	return "yes (" + a.Var + ")"
}

func deviceFS(d *devices.Device) string {
	for _, name := range []string{"system", "system_a"} {
		if p, ok := d.Partition(name); ok {
			return p.FS
		}
	}
	return "-"
}

func runDevices(c *cli.Context) error {
	if err := needArgs(c, 0, 0, "no arguments (use 'romforge devices show NAME' for one device)"); err != nil {
		return err
	}
	e := envOf(c)
	cat, err := loadCatalog()
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(cat.Devices)
	}
	tw := e.table()
	fmt.Fprintln(tw, e.bold("CODENAME\tNAME\tA/B\tDYNAMIC\tFS\tANTI-ROLLBACK\tORIGIN"))
	for _, d := range cat.Devices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Codename, strings.Join(d.Names, " / "), yesNo(d.AB), yesNo(d.Dynamic), deviceFS(d), antiString(d.AntiRollback), originOf(d))
	}
	return tw.Flush()
}

func runDevicesShow(c *cli.Context) error {
	if err := needArgs(c, 1, -1, "a device name"); err != nil {
		return err
	}
	e := envOf(c)
	cat, err := loadCatalog()
	if err != nil {
		return err
	}
	d, err := cat.Lookup(strings.Join(c.Args().Slice(), " "))
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(d)
	}
	w := e.stdout
	fmt.Fprintf(w, "%s (%s %s)\n", e.bold(d.Codename), d.Vendor, strings.Join(d.Names, " / "))
	fmt.Fprintf(w, "  origin:         %s\n", d.Origin)
	if len(d.Aliases) > 0 {
		fmt.Fprintf(w, "  aliases:        %s\n", strings.Join(d.Aliases, ", "))
	}
	fmt.Fprintf(w, "  soc:            %s\n", d.SoC)
	fmt.Fprintf(w, "  products:       %s\n", strings.Join(d.Products, ", "))
	fmt.Fprintf(w, "  a/b:            %s\n", yesNo(d.AB))
	fmt.Fprintf(w, "  dynamic:        %s\n", yesNo(d.Dynamic))
	if d.Super != nil {
		fmt.Fprintf(w, "  super:          %d bytes, %d metadata slots, virtual A/B %s\n", d.Super.Size, d.Super.MetadataSlots, yesNo(d.Super.VirtualAB))
		for _, g := range d.Super.Groups {
			fmt.Fprintf(w, "    group %s: max %d bytes\n", g.Name, g.MaxSize)
		}
	}
	fmt.Fprintf(w, "  anti-rollback:  %s\n", antiString(d.AntiRollback))
	fmt.Fprintf(w, "  max download:   %d bytes\n", d.MaxDownloadSize)
	for _, id := range d.USBIDs {
		fmt.Fprintf(w, "  usb id:         %04x:%04x\n", uint16(id.Vendor), uint16(id.Product))
	}
	switch t := d.Table; {
	case t == nil:
		fmt.Fprintln(w, "  partitions:     the ones romforge writes (no full table is known; the phone's own sizes are used)")
	case t.Complete:
		fmt.Fprintf(w, "  partitions:     full table, from %s: %s\n", t.From, t.Source)
	default:
		fmt.Fprintf(w, "  partitions:     partial table, from %s: %s\n", t.From, t.Source)
	}
	tw := e.table()
	for _, p := range d.Partitions {
		size := "-"
		if p.Size > 0 {
			size = fmt.Sprint(p.Size)
		}
		kind := "physical"
		switch {
		case p.Logical:
			kind = "logical (" + p.Group + ")"
		case d.AB && p.NoSlot:
			kind = "physical, no slot"
		case d.AB:
			kind = "physical, _a and _b"
		}
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", p.Name, p.FS, size, kind)
	}
	tw.Flush()
	if len(d.Sources) > 0 {
		fmt.Fprintln(w, "  sources:")
		for _, s := range d.Sources {
			where := s.Repo
			switch {
			case s.Kind == "lineage-api" || s.URL != "":
				where = s.URL
			case s.Kind == "ota-json":
				where = s.Repo + "/" + s.Path
				if s.Ref != "" {
					where += "@" + s.Ref
				}
			}
			from := ""
			if s.Origin != "" && s.Origin != "builtin" {
				from = " [from " + s.Origin + "]"
			}
			fmt.Fprintf(w, "    %s: %s %s (%s, checksum %s)%s\n", s.Name, s.Kind, where, s.Family, s.Checksum, from)
		}
	}
	if d.Notes != "" {
		fmt.Fprintf(w, "  notes: %s\n", d.Notes)
	}
	return nil
}
