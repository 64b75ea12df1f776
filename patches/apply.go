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
		for i, spec := range s.Steps {
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
			rep.Steps = append(rep.Steps, sr)
		}
	}
	return rep, nil
}
