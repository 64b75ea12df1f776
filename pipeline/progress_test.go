package pipeline

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/progress"
)

// TestBuildProgressTasks: every stage that takes time reports a labelled task: each partition's
// unpacking, the audits (told apart by their labels), and the writes.
func TestBuildProgressTasks(t *testing.T) {
	rom := armaniROM(t, "armani")
	rec := &progress.Recorder{}
	if _, err := Run(context.Background(), Options{Device: device(t, "armani"), Input: rom, Sets: hardened(t), Out: filepath.Join(t.TempDir(), "b"), Progress: rec}); err != nil {
		t.Fatal(err)
	}
	started := map[string]int{}
	for _, e := range rec.Events() {
		if e.Kind == "start" {
			started[e.Task]++
		}
	}
	var unpacks, audits int
	for name, n := range started {
		if strings.HasPrefix(name, "unpack ") {
			unpacks++
		}
		if strings.HasPrefix(name, "audit") {
			audits++
		}
		if name == "" || name == "audit" {
			t.Errorf("an unlabelled task %q started %d times", name, n)
		}
	}
	if unpacks == 0 || started["audit before"] != 1 || audits < 2 {
		t.Fatalf("tasks started: %v", started)
	}
}
