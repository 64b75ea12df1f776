package ci

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/romforge/romforge/devices"
)

func TestMatrix(t *testing.T) {
	cat, err := devices.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Build(cat, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Include) < 20 {
		t.Fatalf("only %d entries", len(m.Include))
	}
	m, err = Build(cat, Options{Devices: []string{"redmi 1s", "curtana"}})
	if err != nil || len(m.Include) != 2 || m.Include[0].Device != "armani" || m.Include[1].Device != "miatoll" {
		t.Fatalf("%+v %v", m, err)
	}
	b, _ := json.Marshal(m)
	if !strings.HasPrefix(string(b), `{"include":[{"device":"armani"`) {
		t.Fatalf("json %s", b)
	}
	if _, err := Build(cat, Options{Source: "nope"}); err == nil {
		t.Fatal("empty matrix accepted")
	}
}

// TestWorkflowsAreValid parses the workflows and checks the structure GitHub Actions requires.
func TestWorkflowsAreValid(t *testing.T) {
	files, _ := filepath.Glob("../.github/workflows/*.yml")
	if len(files) < 2 {
		t.Fatalf("workflows: %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var wf struct {
			Name string         `yaml:"name"`
			On   map[string]any `yaml:"on"`
			Jobs map[string]struct {
				RunsOn   string           `yaml:"runs-on"`
				Needs    any              `yaml:"needs"`
				Strategy map[string]any   `yaml:"strategy"`
				Steps    []map[string]any `yaml:"steps"`
			} `yaml:"jobs"`
		}
		if err := yaml.Unmarshal(b, &wf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if wf.Name == "" || len(wf.On) == 0 || len(wf.Jobs) == 0 {
			t.Fatalf("%s: missing name/on/jobs", f)
		}
		for name, j := range wf.Jobs {
			if j.RunsOn == "" || len(j.Steps) == 0 {
				t.Errorf("%s: job %s lacks runs-on or steps", f, name)
			}
			for i, s := range j.Steps {
				_, uses := s["uses"]
				_, run := s["run"]
				if uses == run {
					t.Errorf("%s: job %s step %d must have exactly one of uses/run", f, name, i)
				}
			}
			if needs, ok := j.Needs.(string); ok {
				if _, exists := wf.Jobs[needs]; !exists {
					t.Errorf("%s: job %s needs unknown job %s", f, name, needs)
				}
			}
		}
	}
}
