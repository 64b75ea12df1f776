package ci

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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
	m, err = Build(cat, Options{Devices: []string{"poco f3", " curtana ", ""}})
	if err != nil || len(m.Include) != 4 || m.Include[0].Device != "alioth" || m.Include[3].Device != "miatoll" ||
		m.Include[0].Asset != "alioth-lineage" || m.Include[1].Asset != "alioth-crdroid" {
		t.Fatalf("%+v %v", m, err)
	}
	b, _ := json.Marshal(m)
	if !strings.HasPrefix(string(b), `{"include":[{"device":"alioth"`) {
		t.Fatalf("json %s", b)
	}
	if _, err := Build(cat, Options{Source: "nope"}); err == nil {
		t.Fatal("empty matrix accepted")
	}
	// A device named explicitly without a source fails instead of silently building nothing.
	if _, err := Build(cat, Options{Devices: []string{"armani"}}); err == nil || !strings.Contains(err.Error(), "no release sources") {
		t.Fatalf("armani: %v", err)
	}
	if _, err := Build(cat, Options{Devices: []string{"nosuchphone"}}); err == nil {
		t.Fatal("unknown device accepted")
	}
}

// TestAssetNamesUnique renders the matrix for every catalog device and checks that the release asset
// names the workflow forms (<device>-<source>-<version>-<what>) are unique and need no rewriting by
// GitHub, for the same version everywhere and for random versions.
func TestAssetNamesUnique(t *testing.T) {
	cat, err := devices.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Build(cat, Options{})
	if err != nil {
		t.Fatal(err)
	}
	valid := regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	versions := func(i int) []string {
		return []string{"1.0", "21.0", fmt.Sprintf("v%d-%d", r.Intn(3), r.Intn(3)), "12.0 (Monthly)/é", ""}
	}
	for round := 0; round < 50; round++ {
		seen := map[string]string{}
		for i, e := range m.Include {
			vs := versions(i)
			v := vs[r.Intn(len(vs))]
			if round == 0 {
				v = "1.0"
			}
			for _, what := range []string{"manifest.json", "bundle.tar.zst", "bundle.tar.zst.part00"} {
				n := AssetName(e.Asset, v, what)
				if !valid.MatchString(n) {
					t.Fatalf("asset name %q needs rewriting", n)
				}
				if prev, dup := seen[n]; dup {
					t.Fatalf("asset %q from both %s and %s/%s", n, prev, e.Device, e.Source)
				}
				seen[n] = e.Device + "/" + e.Source
			}
		}
	}
	// Sources named so that versions could make names collide are refused.
	amb := &devices.Catalog{Devices: []*devices.Device{{Codename: "x", Sources: []devices.Source{{Name: "rom"}, {Name: "rom-beta"}}}}}
	if _, err := Build(amb, Options{}); err == nil {
		t.Fatal("ambiguous source names accepted")
	}
}

// TestSanitizeMatchesShell: the workflow sanitizes versions with tr; both must agree byte for byte.
func TestSanitizeMatchesShell(t *testing.T) {
	tr, err := exec.LookPath("tr")
	if err != nil {
		t.Skip("no tr")
	}
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; i < 30; i++ {
		b := make([]byte, 1+r.Intn(20))
		for j := range b {
			b[j] = byte(1 + r.Intn(255))
			if b[j] == '\n' {
				b[j] = 'n'
			}
		}
		cmd := exec.Command(tr, "-c", "A-Za-z0-9._-", "_")
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := Sanitize(string(b)); got != string(out) {
			t.Fatalf("%q: Go %q, tr %q", b, got, out)
		}
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

var invokesRomforge = regexp.MustCompile(`cmd/romforge|/romforge"|(^|\s)romforge\s`)

// TestWorkflowsSafe checks the properties actionlint does not: least privilege per job (only a job
// that runs no romforge code may write), no ${{ }} expression pasted into a shell script (values
// reach scripts through env:), unique asset names in build-roms, and a ci workflow running test.sh.
func TestWorkflowsSafe(t *testing.T) {
	type step struct {
		Uses string            `yaml:"uses"`
		Run  string            `yaml:"run"`
		With map[string]any    `yaml:"with"`
		Env  map[string]string `yaml:"env"`
	}
	type job struct {
		Permissions any    `yaml:"permissions"`
		Steps       []step `yaml:"steps"`
	}
	type workflow struct {
		Permissions any            `yaml:"permissions"`
		Jobs        map[string]job `yaml:"jobs"`
	}
	writes := func(p any) bool {
		switch v := p.(type) {
		case string:
			return v == "write-all"
		case map[string]any:
			for _, a := range v {
				if a == "write" {
					return true
				}
			}
		}
		return false
	}
	files, _ := filepath.Glob("../.github/workflows/*.yml")
	found := map[string]bool{}
	for _, f := range files {
		found[filepath.Base(f)] = true
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var wf workflow
		if err := yaml.Unmarshal(b, &wf); err != nil {
			t.Fatal(err)
		}
		if wf.Permissions == nil || writes(wf.Permissions) {
			t.Errorf("%s: top-level permissions must be set and read-only (got %v)", f, wf.Permissions)
		}
		for name, j := range wf.Jobs {
			if wf.Permissions == nil && j.Permissions == nil {
				t.Errorf("%s: job %s has the default token permissions", f, name)
			}
			runsRomforge := false
			for _, s := range j.Steps {
				if strings.Contains(s.Run, "${{") {
					t.Errorf("%s: job %s pastes an expression into a shell script (use env:): %q", f, name, s.Run)
				}
				if invokesRomforge.MatchString(s.Run) {
					runsRomforge = true
				}
				if strings.HasPrefix(s.Uses, "actions/checkout@") && s.With["persist-credentials"] != false {
					t.Errorf("%s: job %s checks out with the token persisted in .git/config", f, name)
				}
			}
			if writes(j.Permissions) && runsRomforge {
				t.Errorf("%s: job %s can write and runs romforge on third-party ROMs", f, name)
			}
		}
	}
	for _, want := range []string{"build-roms.yml", "check-sources.yml", "ci.yml"} {
		if !found[want] {
			t.Errorf("missing workflow %s", want)
		}
	}
	b, _ := os.ReadFile("../.github/workflows/build-roms.yml")
	s := string(b)
	for _, want := range []string{`"upload/$base-manifest.json"`, `base="$ASSET-$VERSION"`, "ASSET: ${{ matrix.asset }}", "split -b 1900M", "~/.cache/romforge", "schedule:", "lookup-only: true"} {
		if !strings.Contains(s, want) {
			t.Errorf("build-roms.yml lacks %s", want)
		}
	}
	if c, _ := os.ReadFile("../.github/workflows/ci.yml"); !strings.Contains(string(c), "./scripts/test.sh") {
		t.Error("ci.yml does not run ./scripts/test.sh")
	}
}
