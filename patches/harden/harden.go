// Package harden makes hardening converge on what the audit finds rather than on what a list
// remembers: it applies patch sets, audits the result, maps every remaining finding to a neutralizing
// step by a fixed policy (Plan), applies those and audits again, until nothing is left or a bounded
// number of rounds has passed. What the policy may not touch (boot-critical rules of a -safe set, the
// sets' protect rules and keep-lists, a user's accept list) is reported as accepted, never silently.
package harden

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/patches"
	"github.com/romforge/romforge/patches/audit"
	"github.com/romforge/romforge/progress"
)

// MaxRounds bounds the closure: each round neutralizes what the previous audit found; a finding that
// survives its own action is left (reported), never retried forever.
const MaxRounds = 5

// Options tune a run.
type Options struct {
	// Before is the audit of the untouched target when the caller already has it (else Run scans).
	Before   *audit.Result
	Progress progress.Reporter
	DryRun   bool
	// Workers is passed to the audit (0: its default).
	Workers int
}

// Action is one neutralizing step and the findings it was taken for.
type Action struct {
	Round int `json:"round"`
	// Do is remove_package, remove_file, disable_service, delete_prop, set_prop or replace_host.
	Do     string `json:"do"`
	Target string `json:"target"`
	// Services are the init services disabled with a removed program.
	Services []string             `json:"services_disabled,omitempty"`
	Findings []audit.Finding      `json:"findings"`
	Changes  []patches.FileChange `json:"changes"`
	// BootCritical says the set marks what was removed boot-critical (some ROMs fail to boot).
	BootCritical string `json:"boot_critical,omitempty"`
}

// Accepted is a finding the policy leaves on purpose.
type Accepted struct {
	Finding audit.Finding `json:"finding"`
	// By is boot_critical, protect, keep or accept (the user's list); Rule the rule's value.
	By     string `json:"by"`
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
}

// Outcome is what a hardening run ends with.
type Outcome struct {
	Before   []audit.Finding `json:"findings_before"`
	Actions  []Action        `json:"actions"`
	Accepted []Accepted      `json:"accepted"`
	Left     []audit.Finding `json:"left"`
	Rounds   int             `json:"rounds"`
	// Warnings name boot-critical items removed because the set does not keep them.
	Warnings []string `json:"warnings,omitempty"`
}

// Clean reports whether nothing unaccepted is left.
func (o *Outcome) Clean() bool { return len(o.Left) == 0 }

// Err is nil when the outcome is clean, else an error of kind failure.ErrFindings naming what is left.
func (o *Outcome) Err(what string) error {
	if o.Clean() {
		return nil
	}
	var first []string
	for i, f := range o.Left {
		if i == 3 {
			first = append(first, fmt.Sprintf("and %d more", len(o.Left)-3))
			break
		}
		first = append(first, f.Kind+" "+f.Match+" in "+f.Partition+"/"+f.Path)
	}
	return failure.Kinded(failure.ErrFindings, fmt.Errorf("%s: %d finding(s) left after hardening (%s); neutralize them with a set step, or list them under accept: with a reason in your own set", what, len(o.Left), strings.Join(first, "; ")))
}

// Result is a run: the sets' own report, the closure's outcome, and the last audit.
type Result struct {
	Report  *patches.Report `json:"report"`
	Outcome *Outcome        `json:"outcome"`
	After   *audit.Result   `json:"-"`
}

// Trees returns the target's partitions as trees (the overlays: what the target now holds).
func Trees(t *patches.Target) map[string]tree.Tree {
	out := map[string]tree.Tree{}
	for _, p := range t.Partitions() {
		out[p] = t.Overlay(p)
	}
	return out
}

// Run applies the sets to t and closes over the audit's findings. The target's overlays hold every
// change; callers commit or discard them.
func Run(ctx context.Context, t *patches.Target, sets []*patches.Set, opt Options) (*Result, error) {
	rules := audit.RulesFrom(sets...)
	before := opt.Before
	if before == nil {
		var err error
		if before, err = audit.Scan(ctx, Trees(t), rules, audit.Options{Progress: opt.Progress, Workers: opt.Workers, Label: "audit before"}); err != nil {
			return nil, err
		}
	}
	rep, err := patches.Apply(ctx, t, sets, patches.Options{DryRun: opt.DryRun})
	if err != nil {
		return nil, err
	}
	out := &Outcome{Before: before.Findings, Actions: []Action{}, Accepted: []Accepted{}, Left: []audit.Finding{}, Warnings: rep.Warnings}
	res := &Result{Report: rep, Outcome: out}
	tried := map[string]bool{}
	for round := 1; ; round++ {
		after, err := audit.Scan(ctx, Trees(t), rules, audit.Options{Progress: opt.Progress, Workers: opt.Workers, Label: fmt.Sprintf("audit, hardening round %d", round)})
		if err != nil {
			return nil, err
		}
		res.After = after
		plan := Plan(after.Findings, sets, t)
		out.Accepted = plan.Accepted
		out.Left = plan.Left
		var todo []Planned
		for _, p := range plan.Steps {
			// A finding that survived the action taken for it is left: acting again would not help.
			fresh := false
			for _, f := range p.Findings {
				if !tried[f.Key()] {
					fresh = true
				}
			}
			if fresh {
				todo = append(todo, p)
			} else {
				out.Left = append(out.Left, p.Findings...)
			}
		}
		out.Rounds = round
		if len(todo) == 0 || round > MaxRounds {
			if round > MaxRounds {
				for _, p := range todo {
					out.Left = append(out.Left, p.Findings...)
				}
			}
			break
		}
		for _, p := range todo {
			for _, f := range p.Findings {
				tried[f.Key()] = true
			}
		}
		acts, err := apply(ctx, t, todo, round)
		if err != nil {
			return nil, err
		}
		for _, a := range acts {
			if a.BootCritical != "" {
				out.Warnings = append(out.Warnings, fmt.Sprintf("removed %s, which the set marks boot-critical (%s); use a -safe set to keep it", a.Target, a.BootCritical))
			}
		}
		out.Actions = append(out.Actions, acts...)
	}
	sortFindings(out.Left)
	return res, nil
}

func sortFindings(fs []audit.Finding) {
	sort.Slice(fs, func(i, j int) bool { return fs[i].Key() < fs[j].Key() })
}

// Planned is one step the policy chose and the findings it is for.
type Planned struct {
	Do, Target string
	// File is the target path acted on (prop file, config file, program).
	File     string
	Value    *string
	Findings []audit.Finding
	// BootCritical is the reason a removed package is boot-critical in the sets (removal goes ahead:
	// the set does not keep boot-critical rules).
	BootCritical string
}

// PlanResult is what Plan decided for a set of findings.
type PlanResult struct {
	Steps    []Planned
	Accepted []Accepted
	Left     []audit.Finding
}

// Plan is the closure policy, a pure function of the findings, the sets and where files are:
//   - accepted: what the user's accept list, a protect rule or a keep-list covers, and boot-critical
//     packages of sets that keep them;
//   - a package, or a host inside an APK → remove the package (with permissions, sysconfig, overlays);
//   - a host in another archive (JAR, zip) → remove the file;
//   - a host in native code (ELF) → remove the file and disable every init service that runs it;
//   - a service whose program holds a host → disable the service;
//   - a property of a cloud family, or naming a cloud host → set the family's safe value, else delete it;
//   - a host in any other file (config, hosts lines, scripts) → replace it with a same-length neutral name.
//
// Findings the target cannot address (outside the partitions it edits) are left.
func Plan(findings []audit.Finding, sets []*patches.Set, t *patches.Target) PlanResult {
	res := PlanResult{Accepted: []Accepted{}, Left: []audit.Finding{}}
	byKey := map[string]int{}
	add := func(p Planned, f audit.Finding) {
		k := p.Do + "\x00" + p.Target + "\x00" + p.File
		if i, ok := byKey[k]; ok {
			res.Steps[i].Findings = append(res.Steps[i].Findings, f)
			return
		}
		p.Findings = []audit.Finding{f}
		byKey[k] = len(res.Steps)
		res.Steps = append(res.Steps, p)
	}
	accept := func(f audit.Finding, by string, r patches.Rule) {
		res.Accepted = append(res.Accepted, Accepted{Finding: f, By: by, Rule: r.Value, Reason: r.Reason})
	}
	for _, f := range findings {
		where := f.Partition + "/" + f.Path
		if r, ok := acceptedBy(sets, f.Match, f.Package, where, f.Host); ok {
			accept(f, "accept", r)
			continue
		}
		file, addressable := t.PathFor(f.Partition, f.Path)
		if r, ok := protectedBy(sets, where, file); ok {
			accept(f, "protect", r)
			continue
		}
		pkg := ""
		if f.Kind == "package" {
			pkg = f.Match
		} else if f.Kind == "host" && f.Package != "" {
			pkg = f.Package
		} else if f.Kind == "host" && addressable {
			// Compiled code and libraries in an app's directory belong to its package: the package is
			// kept or removed whole, never left with half its files.
			pkg, _ = t.AppPackage(file)
		}
		if pkg != "" {
			if r, ok := keptBy(sets, pkg); ok {
				accept(f, "keep", r)
				continue
			}
			if r, keep, ok := bootCritical(sets, pkg); ok {
				if keep {
					accept(f, "boot_critical", r)
					continue
				}
				add(Planned{Do: "remove_package", Target: pkg, BootCritical: r.Reason}, f)
				continue
			}
			add(Planned{Do: "remove_package", Target: pkg}, f)
			continue
		}
		if !addressable {
			res.Left = append(res.Left, f)
			continue
		}
		switch {
		case f.Kind == "service":
			add(Planned{Do: "disable_service", Target: f.Match}, f)
		case f.Kind == "prop":
			if v, ok := safeValue(sets, f.Match); ok {
				add(Planned{Do: "set_prop", Target: f.Match, File: file, Value: &v}, f)
			} else {
				add(Planned{Do: "delete_prop", Target: f.Match, File: file}, f)
			}
		case f.Kind == "host" && f.Format == "elf":
			add(Planned{Do: "remove_file", Target: file, File: file}, f)
		case f.Kind == "host" && f.Format == "zip":
			add(Planned{Do: "remove_file", Target: file, File: file}, f)
		case f.Kind == "host":
			add(Planned{Do: "replace_host", Target: f.Match, File: file}, f)
		default:
			res.Left = append(res.Left, f)
		}
	}
	return res
}

func acceptedBy(sets []*patches.Set, keys ...string) (patches.Rule, bool) {
	for _, s := range sets {
		if r, ok := s.Accepted(keys...); ok {
			return r, true
		}
	}
	return patches.Rule{}, false
}

func protectedBy(sets []*patches.Set, paths ...string) (patches.Rule, bool) {
	for _, s := range sets {
		for _, p := range paths {
			if p == "" {
				continue
			}
			if r, ok := s.Protected(p); ok {
				return r, true
			}
		}
	}
	return patches.Rule{}, false
}

func keptBy(sets []*patches.Set, pkg string) (patches.Rule, bool) {
	for _, s := range sets {
		if r, ok := s.KeptPackage(pkg); ok {
			return r, true
		}
	}
	return patches.Rule{}, false
}

// bootCritical returns the boot-critical rule for a package and whether its set keeps such rules.
func bootCritical(sets []*patches.Set, pkg string) (patches.Rule, bool, bool) {
	for _, s := range sets {
		if r, ok := s.BootCriticalPackage(pkg); ok {
			return r, s.KeepBootCritical, true
		}
	}
	return patches.Rule{}, false, false
}

func safeValue(sets []*patches.Set, key string) (string, bool) {
	for _, s := range sets {
		if r, ok := s.PropFamily(key); ok && r.SafeValue != "" {
			return r.SafeValue, true
		}
	}
	return "", false
}

// apply carries out planned steps; services are disabled in one pass over the init scripts.
func apply(ctx context.Context, t *patches.Target, steps []Planned, round int) ([]Action, error) {
	var acts []Action
	var programs []string
	progAction := map[string]int{}
	services := map[string]bool{}
	svcAction := -1
	for _, p := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		a := Action{Round: round, Do: p.Do, Target: p.Target, Findings: p.Findings, BootCritical: p.BootCritical}
		var sr patches.StepReport
		var err error
		switch p.Do {
		case "remove_package":
			var st patches.Step
			st, err = patches.NewStep(patches.StepSpec{Kind: "remove_packages", Items: []patches.Rule{{Value: p.Target, Reason: "audit finding"}}}, false)
			if err == nil {
				err = st.Apply(ctx, t, &sr)
			}
			if err == nil && len(sr.Changes) == 0 {
				// An APK outside the app folders (the package index does not list it): remove the
				// files the findings are in.
				for _, f := range p.Findings {
					if file, ok := t.PathFor(f.Partition, f.Path); ok && f.Format == "zip" && err == nil {
						err = patches.RemoveFile(ctx, t, file, "package "+p.Target+" outside the app folders", &sr)
					}
				}
			}
		case "remove_file":
			err = patches.RemoveFile(ctx, t, p.File, "holds "+p.Findings[0].Match, &sr)
			if p.Findings[0].Format == "elf" {
				programs = append(programs, patches.DevicePath(p.File))
				progAction[patches.DevicePath(p.File)] = len(acts)
			}
		case "disable_service":
			services[p.Target] = true
			if svcAction < 0 {
				svcAction = len(acts)
			}
			a.Services = []string{p.Target}
		case "delete_prop", "set_prop":
			err = patches.EditProp(t, p.File, p.Target, p.Value, &sr)
		case "replace_host":
			_, err = patches.ReplaceHost(t, p.File, p.Target, &sr)
		}
		if err != nil {
			return nil, fmt.Errorf("harden: %s %s: %w", p.Do, p.Target, err)
		}
		a.Changes = sr.Changes
		if a.Changes == nil {
			a.Changes = []patches.FileChange{}
		}
		acts = append(acts, a)
	}
	if len(programs) > 0 {
		// Each removal's action lists the services it disabled and the init scripts it changed.
		for i, prog := range programs {
			var one patches.StepReport
			names, err := patches.DisableServicesRunning(ctx, t, []string{prog}, &one)
			if err != nil {
				return nil, err
			}
			a := &acts[progAction[programs[i]]]
			a.Services = append(a.Services, names...)
			a.Changes = append(a.Changes, one.Changes...)
		}
	}
	if len(services) > 0 {
		var sr patches.StepReport
		if err := patches.DisableServices(ctx, t, services, &sr); err != nil {
			return nil, err
		}
		acts[svcAction].Changes = append(acts[svcAction].Changes, sr.Changes...)
	}
	return acts, nil
}

// Judge splits findings (of built images, say) into accepted ones and the rest, by the same rules as
// Plan: whatever Plan would still act on, or cannot, is left.
func Judge(findings []audit.Finding, sets []*patches.Set, t *patches.Target) ([]Accepted, []audit.Finding) {
	p := Plan(findings, sets, t)
	left := append([]audit.Finding{}, p.Left...)
	for _, s := range p.Steps {
		left = append(left, s.Findings...)
	}
	sortFindings(left)
	return p.Accepted, left
}
