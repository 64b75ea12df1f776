package devices

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/romforge/romforge/internal/failure"
)

const userDevice = `codename: mydev
vendor: Acme
names: ["Acme One"]
soc: test
products: [mydev]
partitions:
  - {name: boot, size: 1024, fs: raw}
sources:
  - name: mine
    kind: ota-json
    url: https://example.org/mydev.json
    family: custom
`

func TestUserCatalog(t *testing.T) {
	b, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	before := len(b.Devices)
	alioth, _ := b.Lookup("alioth")
	aliothSources := len(alioth.Sources)
	fsys := fstest.MapFS{
		"mydev.yaml": {Data: []byte(userDevice)},
		"alioth.yaml": {Data: []byte(`codename: alioth
sources:
  - name: my-builds
    kind: github
    repo: me/alioth-builds
    asset: '\.zip$'
    checksum: auto
    family: custom
`)},
	}
	c, err := b.WithUser(fsys, "/cfg/romforge/devices")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Devices) != before || len(alioth.Sources) != aliothSources {
		t.Fatal("the builtin catalog was modified")
	}
	d, err := c.Lookup("acme one")
	if err != nil || d.Origin != filepath.Join("/cfg/romforge/devices", "mydev.yaml") || d.Sources[0].Origin != d.Origin {
		t.Fatalf("user device: %+v %v", d, err)
	}
	a, _ := c.Lookup("alioth")
	if a.Origin != "builtin" || len(a.Sources) != aliothSources+1 || a.Sources[len(a.Sources)-1].Name != "my-builds" ||
		!strings.HasSuffix(a.Sources[len(a.Sources)-1].Origin, "alioth.yaml") || a.Sources[0].Origin != "builtin" {
		t.Fatalf("addition: %+v", a.Sources)
	}

	bad := map[string]string{
		"typo.yaml":   "codename: alioth\nsourcez: []\n",                                                          // unknown field → parsed as a device, strict
		"nodev.yaml":  "codename: nosuch\nsources:\n  - {name: x, kind: ota-json, url: https://e/x, family: f}\n", // addition to an unknown device
		"clash.yaml":  "codename: alioth\nsources:\n  - {name: lineage, kind: ota-json, url: https://e/x, family: f}\n",
		"badsrc.yaml": "codename: alioth\nsources:\n  - {name: x, kind: ota-json, url: file:///etc/passwd, family: f}\n",
		"dup.yaml":    strings.Replace(userDevice, "codename: mydev", "codename: dup\naliases: [aliothin]", 1),
		"empty.yaml":  "",
	}
	for name, body := range bad {
		_, err := b.WithUser(fstest.MapFS{name: {Data: []byte(body)}}, "/u")
		if err == nil || !errors.Is(err, failure.ErrInvalid) || !strings.Contains(err.Error(), "user catalog") {
			t.Errorf("%s accepted or unclear: %v", name, err)
		}
	}
}

func TestDefaultReadsXDG(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	if err := os.MkdirAll(filepath.Join(dir, "romforge", "devices"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "romforge", "devices", "mydev.yaml"), []byte(userDevice), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if d, err := c.Lookup("mydev"); err != nil || !strings.HasPrefix(d.Origin, dir) {
		t.Fatalf("%+v %v", d, err)
	}
}

func TestSourceKinds(t *testing.T) {
	ok := []Source{
		{Name: "a", Kind: "ota-json", URL: "https://raw.githubusercontent.com/x/y/main/d.json", Family: "f"},
		{Name: "b", Kind: "ota-json", Repo: "crdroidandroid/android_vendor_crDroidOTA", Path: "alioth.json", Ref: "16.0", Checksum: "json", Family: "f"},
		{Name: "c", Kind: "github", Repo: "o/r", Asset: ".", Checksum: "auto", Family: "f"},
	}
	for _, s := range ok {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
	bad := []Source{
		{Name: "a", Kind: "ota-json", Family: "f"},
		{Name: "a", Kind: "ota-json", URL: "https://x/y", Repo: "o/r", Path: "p", Family: "f"},
		{Name: "a", Kind: "ota-json", Repo: "o/r", Family: "f"},
		{Name: "a", Kind: "ota-json", Repo: "o/r", Path: "/etc/passwd", Family: "f"},
		{Name: "a", Kind: "ota-json", URL: "https://x/y", Checksum: "sidecar", Family: "f"},
		{Name: "a", Kind: "rss", Family: "f"},
	}
	for _, s := range bad {
		if err := s.Validate(); err == nil || !errors.Is(err, failure.ErrUsage) {
			t.Errorf("%+v accepted", s)
		}
	}
}
