package patches

import (
	"context"
	"fmt"
)

// Options tune a run.
type Options struct {
	// DryRun computes the report without the caller committing the overlays (the engine itself never
	// writes outside the overlays; DryRun is recorded in the report so callers and users know).
	DryRun bool
}

// Apply runs every step of every set in order against t. On error the target's overlays hold partial
// changes: callers must discard them (the sources are untouched), which is what every command does.
func Apply(ctx context.Context, t *Target, sets []*Set, opt Options) (*Report, error) {
	rep := &Report{DryRun: opt.DryRun}
	for _, s := range sets {
		rep.Sets = append(rep.Sets, s.Name)
		for i, spec := range append(s.Steps, s.familySteps()...) {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			st, err := compile(spec, s.KeepBootCritical)
			if err != nil {
				return rep, fmt.Errorf("patches: %s step %d: %w", s.Name, i+1, err)
			}
			sr := StepReport{Set: s.Name, Kind: st.Kind(), Name: spec.Name}
			if err := st.Apply(ctx, t, &sr); err != nil {
				return rep, fmt.Errorf("patches: %s step %d (%s %s): %w", s.Name, i+1, st.Kind(), spec.Name, err)
			}
			if sr.Changes == nil {
				sr.Changes = []FileChange{}
			}
			for _, c := range sr.Changes {
				switch c.Action {
				case "removed":
					rep.Removed++
				case "added":
					rep.Added++
				default:
					rep.Changed++
				}
			}
			rep.Warnings = append(rep.Warnings, sr.Warnings...)
			rep.Steps = append(rep.Steps, sr)
		}
	}
	return rep, nil
}

// familySteps are the steps a set's family rules imply: remove every installed package of a package
// family (minus the keep-list), and delete (or set to their safe value) properties of a property family.
func (s *Set) familySteps() []StepSpec {
	var out []StepSpec
	if len(s.Families.Packages) > 0 {
		out = append(out, StepSpec{Kind: "remove_packages", Name: "package families", Items: s.Families.Packages, Keep: s.Families.Keep})
	}
	var del []Rule
	var set []PropRule
	for _, r := range s.Families.Props {
		switch {
		case r.SafeValue != "" && !isGlob(r.Value):
			set = append(set, PropRule{Key: r.Value, Value: r.SafeValue, Reason: r.Reason, Source: r.Source})
		case r.SafeValue != "":
			// A family with a safe value: the closure sets each key it finds (patches/harden).
		default:
			del = append(del, r)
		}
	}
	if len(del) > 0 || len(set) > 0 {
		out = append(out, StepSpec{Kind: "props", Name: "property families", Items: del, Set: set})
	}
	return out
}
