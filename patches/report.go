package patches

import (
	"context"
)

// Report is what a patch run changed (or, with DryRun, would change).
type Report struct {
	Sets    []string     `json:"sets"`
	DryRun  bool         `json:"dry_run"`
	Steps   []StepReport `json:"steps"`
	Removed int          `json:"files_removed"`
	Added   int          `json:"files_added"`
	Changed int          `json:"files_changed"`
	// Warnings collect the steps' warnings (boot-critical removals), for stderr.
	Warnings []string `json:"warnings,omitempty"`
	// Hardening is the audit-driven closure's outcome (patches/harden.Outcome): findings before, actions
	// tied to the findings they removed, accepted findings with reasons, findings left.
	Hardening any `json:"hardening,omitempty"`
}

// StepReport is one step's changes.
type StepReport struct {
	Set     string       `json:"set"`
	Kind    string       `json:"kind"`
	Name    string       `json:"name,omitempty"`
	Changes []FileChange `json:"changes"`
	// Notes say what a step skipped and why (boot-critical rules kept, items not present, …).
	Notes []string `json:"notes,omitempty"`
	// Warnings name boot-critical items the step removed (the set does not keep them).
	Warnings []string `json:"warnings,omitempty"`
}

// FileChange is one file's change.
type FileChange struct {
	Path      string `json:"path"`
	Action    string `json:"action"` // removed, added, modified
	OldSize   int64  `json:"old_size,omitempty"`
	NewSize   int64  `json:"new_size,omitempty"`
	OldSHA256 string `json:"old_sha256,omitempty"`
	NewSHA256 string `json:"new_sha256,omitempty"`
	// Detail says what changed inside the file ("+0.0.0.0 api.xmpush.xiaomi.com", "service micloud disabled").
	Detail []string `json:"detail,omitempty"`
}

func (r *StepReport) note(format string) { r.Notes = append(r.Notes, format) }

// recordRemoval lists every file below p with size and hash, then removes p.
func recordRemoval(ctx context.Context, t *Target, r *StepReport, p, why string) error {
	files, err := t.files(ctx, p)
	if err != nil {
		return err
	}
	for _, f := range files {
		n, h, err := t.hashFile(f)
		if err != nil {
			return err
		}
		fc := FileChange{Path: f, Action: "removed", OldSize: n, OldSHA256: h}
		if why != "" {
			fc.Detail = []string{why}
		}
		r.Changes = append(r.Changes, fc)
	}
	if len(files) == 0 {
		r.Changes = append(r.Changes, FileChange{Path: p, Action: "removed", Detail: []string{why}})
	}
	return t.Remove(p)
}

// recordEdit writes new contents for p and records the change (nothing when the bytes are equal).
func recordEdit(t *Target, r *StepReport, p string, old, new []byte, existed bool, m metaLike, detail []string) error {
	if existed && string(old) == string(new) {
		return nil
	}
	fc := FileChange{Path: p, Action: "modified", NewSize: int64(len(new)), NewSHA256: sum(new), Detail: detail}
	if existed {
		fc.OldSize, fc.OldSHA256 = int64(len(old)), sum(old)
	} else {
		fc.Action = "added"
	}
	r.Changes = append(r.Changes, fc)
	return t.WriteFile(p, new, m.meta())
}
