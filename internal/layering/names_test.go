package layering

import (
	"os/exec"
	"path"
	"strings"
	"testing"
)

// Patterns of GitHub's Android, Go and Python .gitignore templates (github/gitignore) that a contributor's
// checkout may carry: a tracked path they match would silently vanish from such a checkout (or be
// skipped by tools that treat it as output), so none may match.
var (
	// anchoredDirs match a top-level folder only ("/build" in the Android template).
	anchoredDirs = []string{"bin", "gen", "out", "release", "build", "proguard", "captures", ".navigation"}
	// anyDirs match a folder of that name at any depth ("build/" in the Python template).
	anyDirs = []string{"__pycache__", "env", "build", "develop-eggs", "dist", "downloads", "eggs", ".eggs", "lib",
		"lib64", "parts", "sdist", "var", "wheels", "htmlcov", ".tox", ".nox", "cover", "instance", "target",
		".pybuilder", "profile_default", "__pypackages__", ".venv", "venv", "ENV", "env.bak", "venv.bak", ".idea",
		"freeline", ".gradle", ".externalNativeBuild", ".hypothesis", ".pytest_cache", ".mypy_cache"}
	// fileGlobs match a file's base name at any depth.
	fileGlobs = []string{"*.apk", "*.ap_", "*.aab", "*.dex", "*.class", "*.log", "*.exe", "*.exe~", "*.dll", "*.so",
		"*.dylib", "*.test", "*.out", "coverage.*", "*.coverprofile", "profile.cov", "go.work", "go.work.sum",
		".env", "*.py[cod]", "*.egg", "*.manifest", "*.spec", "*.mo", "*.pot", "local.properties"}
)

// ignoredBy names the template pattern that drops p, or "".
func ignoredBy(p string) string {
	parts := strings.Split(p, "/")
	for _, d := range anchoredDirs {
		if len(parts) > 1 && parts[0] == d {
			return "/" + d
		}
	}
	for _, dir := range parts[:len(parts)-1] {
		for _, d := range anyDirs {
			if dir == d {
				return d + "/"
			}
		}
	}
	base := parts[len(parts)-1]
	for _, g := range fileGlobs {
		if ok, _ := path.Match(g, base); ok && base != "coverage.go" {
			return g
		}
	}
	return ""
}

func TestNoPathDroppedByGitignoreTemplates(t *testing.T) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	out, err := exec.Command("git", "-C", strings.TrimSpace(string(top)), "ls-files").Output()
	if err != nil || len(out) == 0 {
		t.Skipf("git ls-files: %v", err)
	}
	files := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(files) < 100 {
		t.Fatalf("git ls-files listed only %d files", len(files))
	}
	for _, f := range files {
		if pat := ignoredBy(f); pat != "" {
			t.Errorf("%s is dropped by the .gitignore pattern %q of GitHub's Android/Go/Python templates: rename it", f, pat)
		}
	}
}

func TestIgnoredByCatchesTheOldNames(t *testing.T) {
	for p, want := range map[string]bool{
		"build/build.go":              true,
		"release/github.go":           true,
		"image/lib/x.go":              true,
		"patches/testdata/app.apk":    true,
		"pipeline/build.go":           false,
		"fetch/github.go":             false,
		"cmd/romforge/main.go":        false,
		"scripts/build-lptools.sh":    false,
		"internal/coverage.go":        false,
		"devices/catalog/armani.yaml": false,
	} {
		if got := ignoredBy(p) != ""; got != want {
			t.Errorf("ignoredBy(%q) dropped=%v, want %v", p, got, want)
		}
	}
}
