package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash/fastboot"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
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
		}, {
			Name:      "table",
			Usage:     "read a phone's partition table (its bootloader's getvar all) into a user catalog file, and say where it differs from the catalog",
			ArgsUsage: "NAME",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "serial", Aliases: []string{"s"}, EnvVars: []string{"ANDROID_SERIAL"}, Usage: "read it from this phone, in its bootloader (USB serial, usb:PORT, tcp:HOST[:PORT], udp:HOST[:PORT])"},
				&cli.StringFlag{Name: "getvar", Usage: "read it from a saved 'fastboot getvar all 2>&1' transcript (or romforge's --json of it); - for stdin"},
				&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the file here, e.g. into the user catalog folder ($XDG_CONFIG_HOME/romforge/devices); default: stdout"},
			},
			Action: runDevicesTable,
		}},
	})
}

// originOf marks a catalog entry: builtin, user (a file of the user catalog), or builtin+user when
// the user catalog added sources to a built-in device.
func originOf(d *devices.Device) string {
	if d.Origin != "builtin" {
		return "user"
	}
	if d.Table != nil && d.Table.Origin != "" {
		return "builtin+user"
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

// deviceArg looks up the device the arguments name (a codename, alias or marketing name of several words).
func deviceArg(c *cli.Context) (*devices.Device, error) {
	if err := needArgs(c, 1, -1, "a device name"); err != nil {
		return nil, err
	}
	cat, err := loadCatalog()
	if err != nil {
		return nil, err
	}
	return cat.Lookup(strings.Join(c.Args().Slice(), " "))
}

func runDevicesShow(c *cli.Context) error {
	e := envOf(c)
	d, err := deviceArg(c)
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

func runDevicesTable(c *cli.Context) error {
	e := envOf(c)
	d, err := deviceArg(c)
	if err != nil {
		return err
	}
	var vars map[string]string
	var source string
	switch path, serial := c.String("getvar"), c.String("serial"); {
	case path != "" && serial != "":
		return usagef("devices table: --getvar and --serial are two ways to read one table: give one")
	case path == "-":
		if vars, err = fastboot.ParseGetvarDump(e.stdin); err != nil {
			return err
		}
		source = "getvar all read from stdin"
	case path != "":
		f, err := os.Open(path)
		if err != nil {
			return failure.Kinded(failure.ErrIO, fmt.Errorf("devices table: %w", err))
		}
		defer f.Close()
		if vars, err = fastboot.ParseGetvarDump(f); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		source = "getvar all saved in " + filepath.Base(path)
	default:
		cl, err := dialClient(e.ctx, serial)
		if err != nil {
			return err
		}
		defer cl.Close()
		if vars, err = cl.GetVarAll(e.ctx); err != nil {
			return err
		}
		source = "getvar all of a phone"
	}
	parts, err := devices.TableFromVars(d, vars)
	if err != nil {
		return err
	}
	if bl := vars["version-bootloader"]; bl != "" {
		source += ", bootloader " + bl
	}
	source += ", " + time.Now().UTC().Format("2006-01-02")
	tab := &devices.Table{From: "getvar", Source: source, Complete: true}
	// Merged as the user catalog would merge it: a table that breaks the catalog's rules is refused now,
	// not on every later command.
	if _, err := d.WithTable(parts, tab); err != nil {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("devices table: the phone's table does not fit %s's catalog entry: %w", d.Codename, err))
	}
	diffs := d.DiffTable(parts)
	file := devices.TableFile(d.Codename, parts, tab)
	out := c.String("output")
	if out != "" {
		if err := safeio.WriteFile(out, file, 0o666); err != nil {
			return failure.Kinded(failure.ErrIO, fmt.Errorf("devices table: %w", err))
		}
	}
	if e.json {
		if diffs == nil {
			diffs = []devices.TableDiff{}
		}
		return e.printJSON(map[string]any{"codename": d.Codename, "partitions": parts, "table": tab, "differences": diffs, "output": out})
	}
	for _, df := range diffs {
		switch {
		case df.Catalog == 0 && df.Table > 0:
			e.logf("%s: %d bytes on the phone; the catalog has no size for it", df.Partition, df.Table)
		case df.Table == 0:
			e.logf("%s: in the catalog (%d bytes) but not reported by the phone", df.Partition, df.Catalog)
		default:
			e.logf("%s: %d bytes on the phone, %d in the catalog", df.Partition, df.Table, df.Catalog)
		}
	}
	e.logf("%d partitions, %d differences from the catalog", len(parts), len(diffs))
	if out != "" {
		e.logf("wrote %s", out)
		return nil
	}
	_, err = e.stdout.Write(file)
	return err
}
