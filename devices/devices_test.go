package devices

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/romforge/romforge/internal/failure"
)

func TestBuiltinCatalog(t *testing.T) {
	c, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Lookup("Redmi 1S")
	if err != nil || d.Codename != "armani" || d.AB || d.Dynamic {
		t.Fatalf("redmi 1s → %+v, %v", d, err)
	}
	for _, q := range []string{"ARMANI", "hm1s", "redmi-1s", "Xiaomi Redmi 1S"} {
		if d, err := c.Lookup(q); err != nil || d.Codename != "armani" {
			t.Errorf("lookup %q: %v", q, err)
		}
	}
	_, err = c.Lookup("armany")
	var nf *NotFoundError
	if !errors.As(err, &nf) || !errors.Is(err, failure.ErrUsage) || len(nf.Nearest) == 0 || nf.Nearest[0] != "armani" {
		t.Fatalf("armany: %v", err)
	}
}

const good = `codename: x1
vendor: Xiaomi
names: [X One]
soc: SoC
products: [x1]
partitions:
  - {name: boot, fs: raw}
`

func TestParseRejects(t *testing.T) {
	cases := map[string]struct{ body, want string }{
		"unknown field": {good + "colour: red\n", "line 8: field colour not found"},
		"missing":       {"codename: x1\n", "vendor is required"},
		"bad regexp":    {good + "sources:\n  - {name: s, kind: github, repo: a/b, asset: '([', checksum: none, family: lineageos}\n", "asset regexp"},
		"bad fs":        {strings.Replace(good, "fs: raw", "fs: ntfs", 1), "fs \"ntfs\""},
		"syntax":        {good + "  - {name: [\n", "x1.yaml"},
		"logical":       {strings.Replace(good, "fs: raw}", "fs: raw, logical: true}", 1), "no dynamic partitions"},
	}
	for name, tc := range cases {
		_, err := Parse("x1.yaml", []byte(tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "x1.yaml") {
			t.Errorf("%s: err = %v, want it to name the file and contain %q", name, err, tc.want)
		}
	}
	if _, err := Parse("x1.yaml", []byte(good)); err != nil {
		t.Fatalf("good file rejected: %v", err)
	}
}

func TestDuplicateAlias(t *testing.T) {
	fsys := fstest.MapFS{
		"x1.yaml": {Data: []byte(good + "aliases: [shared]\n")},
		"x2.yaml": {Data: []byte(strings.ReplaceAll(good, "x1", "x2") + "aliases: [shared]\n")},
	}
	if _, err := Load(fsys); err == nil || !strings.Contains(err.Error(), `"shared" is already used`) {
		t.Fatalf("duplicate alias: %v", err)
	}
}
