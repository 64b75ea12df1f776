package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image/bootimg"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/patches"
	"github.com/romforge/romforge/patches/audit"
	"github.com/romforge/romforge/patches/harden"
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
	fam := []struct {
		title string
		rules []patches.Rule
	}{{"package families (removed when installed)", s.Families.Packages}, {"kept packages (never removed; findings there accepted)", s.Families.Keep},
		{"property families (deleted, or set to safe_value)", s.Families.Props}, {"protected paths (never removed or edited; findings there accepted)", s.Families.Protect},
		{"accepted findings", s.Accept}}
	for _, f := range fam {
		if len(f.rules) == 0 {
			continue
		}
		fmt.Fprintf(e.stdout, "\n%s:\n", f.title)
		for _, it := range f.rules {
			extra := ""
			if it.SafeValue != "" {
				extra += "; safe value: " + it.SafeValue
			}
			if it.Breaks != "" {
				extra += "; breaks: " + it.Breaks
			}
			if it.BootCritical {
				extra += "; boot-critical"
			}
			if it.Source != "" {
				extra += "; source: " + it.Source
			}
			fmt.Fprintf(e.stdout, "   %-45s %s%s\n", it.Value, it.Reason, extra)
		}
	}
	fmt.Fprintln(e.stdout, "\nclosure: after the steps, every audit finding is neutralized (package → removed; native code → removed with the init services that run it; property → deleted or set safe; host in a file → replaced by a same-length .invalid name), unless kept, protected, boot-critical in a -safe set or accepted")
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
	// The sets, then the audit-driven closure: every finding neutralized, accepted, or reported as left.
	hr, err := harden.Run(e.ctx, target, sets, harden.Options{DryRun: c.Bool("dry-run"), Progress: e.reporter()})
	if err != nil {
		return fmt.Errorf("%w (nothing was written)", err)
	}
	rep := hr.Report
	rep.Hardening = hr.Outcome
	warnBootCritical(e, hr.Outcome)
	if !c.Bool("dry-run") {
		if err := tg.commit(e, target, c.String("output")); err != nil {
			return err
		}
	}
	if e.json {
		if err := e.printJSON(rep); err != nil {
			return err
		}
		return hr.Outcome.Err("patch")
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
	printHardening(e, hr.Outcome)
	return hr.Outcome.Err("patch")
}

// warnBootCritical says on stderr what was removed although a set marks it boot-critical (the default
// xiaomi-hardened removes those; the -safe sets keep them).
func warnBootCritical(e *env, o *harden.Outcome) {
	for _, w := range o.Warnings {
		if e.json {
			emitJSONLine(e.stderr, map[string]string{"event": "warning", "message": w})
			continue
		}
		fmt.Fprintf(e.stderr, "romforge: warning: %s\n", w)
	}
}

// printHardening prints the closure's outcome: findings before, actions (each with the findings it
// removed), accepted findings with their reasons, and what is left.
func printHardening(e *env, o *harden.Outcome) {
	if o == nil {
		return
	}
	fmt.Fprintf(e.stdout, "hardening: %d finding(s) before, %d action(s) in %d round(s), %d accepted, %d left\n", len(o.Before), len(o.Actions), o.Rounds, len(o.Accepted), len(o.Left))
	for _, a := range o.Actions {
		var why []string
		for i, f := range a.Findings {
			if i == 2 && !e.verbose {
				why = append(why, fmt.Sprintf("+%d more", len(a.Findings)-2))
				break
			}
			why = append(why, f.Kind+" "+f.Match+" in "+f.Partition+"/"+f.Path)
		}
		extra := ""
		if len(a.Services) > 0 {
			extra = "; services disabled: " + strings.Join(a.Services, ", ")
		}
		fmt.Fprintf(e.stdout, "  action   %-15s %s (for %s)%s\n", a.Do, a.Target, strings.Join(why, "; "), extra)
	}
	for _, a := range o.Accepted {
		fmt.Fprintf(e.stdout, "  accepted %s — %s %s: %s\n", a.Finding.String(), a.By, a.Rule, a.Reason)
	}
	for _, f := range o.Left {
		fmt.Fprintf(e.stdout, "  left     %s\n", f.String())
	}
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
	trees, closeTarget, err := openAuditTarget(c.Args().First(), c.String("partition"))
	if err != nil {
		return err
	}
	defer closeTarget()
	res, err := audit.Scan(e.ctx, trees, audit.RulesFrom(sets...), audit.Options{Progress: e.reporter()})
	if err != nil {
		return err
	}
	// Findings the sets accept (keep-lists, protected paths, boot-critical rules of -safe sets, the user's
	// accept list) are listed as accepted and do not fail the audit.
	accepted, left := harden.Judge(res.Findings, sets, patches.NewTarget(trees))
	if e.json {
		doc := struct {
			*audit.Result
			Accepted []harden.Accepted `json:"accepted"`
			Left     []audit.Finding   `json:"left"`
		}{res, accepted, left}
		if err := e.printJSON(doc); err != nil {
			return err
		}
	} else {
		for _, f := range left {
			fmt.Fprintln(e.stdout, f.String())
		}
		for _, a := range accepted {
			fmt.Fprintf(e.stdout, "accepted %s — %s %s: %s\n", a.Finding.String(), a.By, a.Rule, a.Reason)
		}
		for _, u := range res.Unreadable {
			fmt.Fprintf(e.stdout, "unreadable %s\n", u)
		}
		fmt.Fprintf(e.stdout, "audit: %d finding(s) in %d files (%d bytes scanned), %d accepted\n", len(left), res.Files, res.Bytes, len(accepted))
	}
	if len(left) > 0 {
		return failure.Kinded(failure.ErrFindings, fmt.Errorf("audit: %d finding(s) (%d more accepted)", len(left), len(accepted)))
	}
	return nil
}

// openAuditTarget opens what `audit` reads: a boot, init_boot or vendor_boot image (its ramdisks), or
// anything `patch` opens (directories, filesystem images, ROM containers).
func openAuditTarget(p, partition string) (map[string]tree.Tree, func(), error) {
	if f, err := os.Open(p); err == nil {
		head := make([]byte, 8)
		n, _ := io.ReadFull(f, head)
		st, serr := f.Stat()
		if serr == nil && st.Mode().IsRegular() && bootimg.IsBootImage(head[:n]) {
			defer f.Close()
			name := strings.TrimSuffix(strings.TrimSuffix(strings.SplitN(filepath.Base(p), ".", 2)[0], "_a"), "_b")
			if name != "vendor_boot" && name != "init_boot" {
				name = "boot"
			}
			if bootimg.IsVendorBoot(head[:n]) {
				name = "vendor_boot"
			}
			rds, notes, err := patches.ReadBootRamdisks(f, st.Size(), name)
			if err != nil {
				return nil, nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("audit: %s: %w", p, err))
			}
			if len(rds) == 0 {
				return nil, nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("audit: %s is a boot image without a ramdisk romforge can read (%s)", p, strings.Join(notes, "; ")))
			}
			trees := map[string]tree.Tree{}
			for _, rd := range rds {
				trees[rd.Name] = rd.Tree
			}
			return trees, func() {}, nil
		}
		f.Close()
	}
	if st, err := os.Stat(filepath.Join(p, "flash_all.sh")); err == nil && st.Mode().IsRegular() {
		// A Xiaomi fastboot ROM folder: audit the partitions inside its images (super, boot), not the
		// folder's files as bytes.
		tg, err := openContainerTarget(p)
		if err != nil {
			return nil, nil, err
		}
		return tg.trees, tg.close, nil
	}
	tg, err := openPatchTarget(p, partition)
	if err != nil {
		return nil, nil, err
	}
	return tg.trees, tg.close, nil
}
