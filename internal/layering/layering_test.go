package layering

import (
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/romforge/romforge/"

// moduleGraph asks the go command for every package's direct imports inside the module.
func moduleGraph(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"...").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	g := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], module)
		g[pkg] = nil
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, module) {
				g[pkg] = append(g[pkg], strings.TrimPrefix(imp, module))
			}
		}
	}
	return g
}

func TestLayering(t *testing.T) {
	g := moduleGraph(t)
	if len(g) < 20 {
		t.Fatalf("go list found only %d packages", len(g))
	}
	v := Violations(g)
	sort.Strings(v)
	for _, s := range v {
		t.Error(s)
	}
}

// The checker must catch what the layering forbids, not merely pass.
func TestViolationsCatchUpwardImports(t *testing.T) {
	for _, tc := range []struct {
		pkg, imp string
		bad      bool
	}{
		{"bundle", "flash", true},
		{"pipeline", "flash/fastboot", true},
		{"image/sparse", "fs/ext4", true},
		{"flash/plan", "flash", true},
		{"fetch", "pipeline", true},
		{"patches", "cmd/romforge", true},
		{"bundle", "flash/plan", false},
		{"flash", "flash/plan", false},
		{"cmd/romforge", "flash", false},
		{"fs/ext4", "fs/tree", false},
	} {
		got := len(Violations(map[string][]string{tc.pkg: {tc.imp}})) > 0
		if got != tc.bad {
			t.Errorf("%s → %s: violation %v, want %v", tc.pkg, tc.imp, got, tc.bad)
		}
	}
	if v := Violations(map[string][]string{"newthing": nil}); len(v) != 1 {
		t.Errorf("an unranked package must be reported, got %v", v)
	}
}
