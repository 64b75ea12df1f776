package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/patches"
	"github.com/romforge/romforge/patches/audit"
)

func init() {
	register(&cli.Command{
		Name:  "patches",
		Usage: "list and show patch sets",
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "list the built-in patch sets", Action: runPatchesList},
			{Name: "show", Usage: "show one patch set (built-in name or YAML file)", ArgsUsage: "NAME|FILE", Action: runPatchesShow},
		},
	})
	register(&cli.Command{
		Name:      "patch",
		Usage:     "apply patch sets to an extracted tree or a filesystem image",
		ArgsUsage: "TARGET",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "set", Usage: "patch set name or YAML file (repeatable)", Required: true},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output image (required when TARGET is an image)"},
			&cli.StringFlag{Name: "partition", Usage: "partition name of a single-partition TARGET (default: guessed)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "report what would change; write nothing"},
		},
		Action: runPatch,
	})
	register(&cli.Command{
		Name:      "audit",
		Usage:     "prove a tree, image or ROM no longer carries what patch sets remove (exit 1 when something is found)",
		ArgsUsage: "TARGET",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "set", Usage: "patch set name or YAML file (repeatable; default xiaomi-hardened)"},
			&cli.StringFlag{Name: "partition", Usage: "partition name of a single-partition TARGET (default: guessed)"},
		},
		Action: runAudit,
	})
}

func loadSets(names []string) ([]*patches.Set, error) {
	var out []*patches.Set
	for _, n := range names {
		s, err := patches.Load(n)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func runPatchesList(c *cli.Context) error {
	e := envOf(c)
	var sets []*patches.Set
	for _, n := range patches.Builtin() {
		s, err := patches.Load(n)
		if err != nil {
			return err
		}
		sets = append(sets, s)
	}
	if e.json {
		type row struct {
			Name        string   `json:"name"`
			Description string   `json:"description"`
			Include     []string `json:"include,omitempty"`
			Steps       int      `json:"steps"`
		}
		var rows []row
		for _, s := range sets {
			rows = append(rows, row{s.Name, s.Description, s.Include, len(s.Steps)})
		}
		return e.printJSON(rows)
	}
	tw := e.table()
	fmt.Fprintln(tw, e.bold("NAME\tSTEPS\tDESCRIPTION"))
	for _, s := range sets {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", s.Name, len(s.Steps), s.Description)
	}
	return tw.Flush()
}

func runPatchesShow(c *cli.Context) error {
	if err := needArgs(c, 1, 1, "one patch set name or file"); err != nil {
		return err
	}
	e := envOf(c)
	s, err := patches.Load(c.Args().First())
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(s)
	}
	fmt.Fprintf(e.stdout, "%s — %s\n", e.bold(s.Name), s.Description)
	if s.KeepBootCritical {
		fmt.Fprintln(e.stdout, "keeps rules marked boot-critical")
	}
	for i, st := range s.Steps {
		fmt.Fprintf(e.stdout, "\n%d. %s %s\n", i+1, st.Kind, st.Name)
		for _, it := range append(st.Items, st.ValueContains...) {
			extra := ""
			if it.Breaks != "" {
				extra += "; breaks: " + it.Breaks
			}
			if it.BootCritical {
				extra += "; boot-critical"
			}
			fmt.Fprintf(e.stdout, "   %-45s %s%s\n", it.Value, it.Reason, extra)
		}
		for _, p := range st.Set {
			fmt.Fprintf(e.stdout, "   %s=%s  %s\n", p.Key, p.Value, p.Reason)
		}
		for _, r := range st.Replacements {
			fmt.Fprintf(e.stdout, "   %q → %q  %s\n", r.From, r.To, r.Reason)
		}
	}
	if len(s.AuditDomains) > 0 {
		var d []string
		for _, a := range s.AuditDomains {
			d = append(d, a.Value)
		}
		fmt.Fprintf(e.stdout, "\naudit domains: %s\n", strings.Join(d, ", "))
	}
	return nil
}

func runPatch(c *cli.Context) error {
	if err := needArgs(c, 1, 1, "one TARGET (directory or image)"); err != nil {
		return err
	}
	e := envOf(c)
	sets, err := loadSets(c.StringSlice("set"))
	if err != nil {
		return err
	}
	tg, err := openPatchTarget(c.Args().First(), c.String("partition"))
	if err != nil {
		return err
	}
	defer tg.close()
	if tg.image && c.String("output") == "" && !c.Bool("dry-run") {
		return usagef("patch: TARGET %s is an image: give -o OUT.img (the input is never modified)", c.Args().First())
	}
	target := patches.NewTarget(tg.trees)
	rep, err := patches.Apply(e.ctx, target, sets, patches.Options{DryRun: c.Bool("dry-run")})
	if err != nil {
		return fmt.Errorf("%w (nothing was written)", err)
	}
	if !c.Bool("dry-run") {
		if err := tg.commit(e, target, c.String("output")); err != nil {
			return err
		}
	}
	if e.json {
		return e.printJSON(rep)
	}
	for _, st := range rep.Steps {
		fmt.Fprintf(e.stdout, "%s: %s %s — %d change(s)\n", st.Set, st.Kind, st.Name, len(st.Changes))
		for _, ch := range st.Changes {
			d := ch.Detail
			if len(d) > 3 && !e.verbose {
				d = append(d[:3:3], fmt.Sprintf("(+%d more)", len(ch.Detail)-3))
			}
			fmt.Fprintf(e.stdout, "  %-8s %s %s\n", ch.Action, ch.Path, strings.Join(d, "; "))
		}
		if e.verbose {
			for _, n := range st.Notes {
				fmt.Fprintf(e.stdout, "  note: %s\n", n)
			}
		}
	}
	verb := "patched"
	if c.Bool("dry-run") {
		verb = "dry run: would change"
	}
	fmt.Fprintf(e.stdout, "%s: %d removed, %d added, %d modified\n", verb, rep.Removed, rep.Added, rep.Changed)
	return nil
}

func runAudit(c *cli.Context) error {
	if err := needArgs(c, 1, 1, "one TARGET (directory, image or ROM)"); err != nil {
		return err
	}
	e := envOf(c)
	names := c.StringSlice("set")
	if len(names) == 0 {
		names = []string{"xiaomi-hardened"}
	}
	sets, err := loadSets(names)
	if err != nil {
		return err
	}
	tg, err := openPatchTarget(c.Args().First(), c.String("partition"))
	if err != nil {
		return err
	}
	defer tg.close()
	res, err := audit.Scan(e.ctx, tg.trees, audit.RulesFrom(sets...), audit.Options{Progress: e.reporter()})
	if err != nil {
		return err
	}
	if e.json {
		if err := e.printJSON(res); err != nil {
			return err
		}
	} else {
		for _, f := range res.Findings {
			fmt.Fprintln(e.stdout, f.String())
		}
		for _, u := range res.Unreadable {
			fmt.Fprintf(e.stdout, "unreadable %s\n", u)
		}
		fmt.Fprintf(e.stdout, "audit: %d finding(s) in %d files (%d bytes scanned)\n", len(res.Findings), res.Files, res.Bytes)
	}
	if !res.Clean() {
		return failure.Kinded(failure.ErrFindings, fmt.Errorf("audit: %d finding(s)", len(res.Findings)))
	}
	return nil
}
