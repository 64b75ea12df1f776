package tree

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/romforge/romforge/internal/validators"
)

func sample(t *testing.T) *Mem {
	t.Helper()
	m := NewMem()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(m.MkdirAll("etc/init", Meta{Mode: 0o755}))
	must(m.MkdirAll("app/XMSF", Meta{Mode: 0o755}))
	must(m.Put("etc/hosts", Meta{Mode: 0o644}, []byte("127.0.0.1 localhost\n")))
	must(m.Put("etc/init/micloud.rc", Meta{Mode: 0o644}, []byte("service micloud /system/bin/micloud\n")))
	must(m.Put("app/XMSF/XMSF.apk", Meta{Mode: 0o644, UID: 0, GID: 0}, []byte("PK")))
	must(m.Put("bin", Meta{Mode: fs.ModeSymlink | 0o777, Target: "/system/bin"}, nil))
	return m
}

func TestMemFSConformance(t *testing.T) {
	if err := fstest.TestFS(sample(t), "etc/hosts", "etc/init/micloud.rc", "app/XMSF/XMSF.apk"); err != nil {
		t.Fatal(err)
	}
}

func TestOverlay(t *testing.T) {
	base := sample(t)
	o := NewOverlay(base)
	if err := o.Remove("app/XMSF"); err != nil {
		t.Fatal(err)
	}
	if err := o.Put("etc/hosts", Meta{Mode: 0o644}, []byte("0.0.0.0 api.micloud.xiaomi.net\n")); err != nil {
		t.Fatal(err)
	}
	if err := o.Put("etc/new.txt", Meta{Mode: 0o600, UID: 1000}, []byte("new")); err != nil {
		t.Fatal(err)
	}
	m, _ := base.Meta("etc/init/micloud.rc")
	m.SetSELinux("u:object_r:system_file:s0")
	if err := o.SetMeta("etc/init/micloud.rc", m); err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(o, "etc/hosts", "etc/new.txt", "etc/init/micloud.rc"); err != nil {
		t.Fatal(err)
	}
	if o.Exists("app/XMSF/XMSF.apk") || o.Exists("app/XMSF") {
		t.Fatal("removed subtree still visible")
	}
	if !base.entriesHas("app/XMSF/XMSF.apk") {
		t.Fatal("base was modified")
	}
	got, _ := fs.ReadFile(o, "etc/hosts")
	if !bytes.Contains(got, []byte("micloud")) {
		t.Fatalf("hosts = %q", got)
	}
	rc, _ := fs.ReadFile(o, "etc/init/micloud.rc")
	if string(rc) != "service micloud /system/bin/micloud\n" {
		t.Fatalf("SetMeta lost contents: %q", rc)
	}
	if mm, _ := o.Meta("etc/init/micloud.rc"); mm.SELinux() != "u:object_r:system_file:s0" {
		t.Fatalf("label = %q", mm.SELinux())
	}
	if err := o.Put("nodir/x", Meta{Mode: 0o644}, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("put without parent: %v", err)
	}
	if err := o.Put("../x", Meta{Mode: 0o644}, nil); !errors.Is(err, ErrEscape) {
		t.Fatalf("put outside: %v", err)
	}
	// Re-adding inside a removed subtree shows only what was put back.
	if err := o.Put("app/XMSF", Meta{Mode: fs.ModeDir | 0o755}, nil); err != nil {
		t.Fatal(err)
	}
	ents, _ := o.ReadDir("app/XMSF")
	if len(ents) != 0 {
		t.Fatalf("re-added dir shows base children: %v", ents)
	}
	kinds := ""
	for _, c := range o.Changes() {
		kinds += string(c.Kind) + ":" + c.Path + " "
	}
	if kinds != "removed:app/XMSF replaced:etc/hosts added:etc/new.txt meta:etc/init/micloud.rc added:app/XMSF " {
		t.Fatalf("changes = %s", kinds)
	}
}

func (t *Mem) entriesHas(name string) bool { _, ok := t.entries[name]; return ok }

func TestCapabilityEncoding(t *testing.T) {
	var m Meta
	m.SetCapabilities(1<<12 | 1<<13 | 1<<40)
	if m.Capabilities() != 1<<12|1<<13|1<<40 {
		t.Fatalf("round trip = %#x", m.Capabilities())
	}
	b := m.Xattrs[XattrCapability]
	if len(b) != 20 || !bytes.Equal(b[:4], []byte{1, 0, 0, 2}) {
		t.Fatalf("encoding % x", b)
	}
	m.SetCapabilities(0)
	if _, ok := m.Xattrs[XattrCapability]; ok {
		t.Fatal("zero caps kept the xattr")
	}
	if _, err := DecodeCapability([]byte{1, 2}); err == nil {
		t.Fatal("short value accepted")
	}
	for _, u := range []uint32{0o100644, 0o040755, 0o120777, 0o020600, 0o060600, 0o104755, 0o041777, 0o010644, 0o140755} {
		if got := UnixMode(FileMode(u)); got != u {
			t.Errorf("mode %o → %o", u, got)
		}
	}
}

func TestFSConfigAndFileContexts(t *testing.T) {
	cfg, err := ParseFSConfig(strings.NewReader("# c\nsystem 0 0 0755\nsystem/bin/netd 0 2000 0750 capabilities=0x3000\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e := cfg["system/bin/netd"]; e.GID != 2000 || e.Mode != 0o750 || e.Capabilities != 0x3000 {
		t.Fatalf("entry %+v", e)
	}
	if _, err := ParseFSConfig(strings.NewReader("system/x 0 zero 0644\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad line error = %v", err)
	}
	fc, err := ParseFileContexts(strings.NewReader(`
/system(/.*)?            u:object_r:system_file:s0
/system/bin/netd         u:object_r:netd_exec:s0
/system/bin(/.*)?        u:object_r:system_bin:s0
/system/etc/hosts  --    u:object_r:hosts_file:s0
`))
	if err != nil {
		t.Fatal(err)
	}
	reg := Meta{Mode: 0o644}
	for p, want := range map[string]string{"/system/bin/netd": "u:object_r:netd_exec:s0", "/system/bin/sh": "u:object_r:system_bin:s0", "/system/etc/hosts": "u:object_r:hosts_file:s0", "/system/lib/x.so": "u:object_r:system_file:s0"} {
		if got := fc.Lookup(p, reg); got != want {
			t.Errorf("%s → %q, want %q", p, got, want)
		}
	}
	if got := fc.Lookup("/system/etc/hosts", Meta{Mode: fs.ModeDir}); got != "u:object_r:system_file:s0" {
		t.Errorf("type filter: %q", got)
	}
	var out bytes.Buffer
	m := sample(t)
	mm, _ := m.Meta("etc/hosts")
	mm.SetSELinux("u:object_r:hosts_file:s0")
	m.Put("etc/hosts", mm, []byte("x"))
	if err := WriteFileContexts(&out, m, "/system"); err != nil {
		t.Fatal(err)
	}
	if out.String() != `/system/etc/hosts u:object_r:hosts_file:s0`+"\n" {
		t.Fatalf("file_contexts = %q", out.String())
	}
}

// TestDirMatchesRealTree reads the fixture ROM tree (labels and capabilities set by setfattr/setcap) and
// checks what the reference tools' checks say about /bin/netd_fake.
func TestDirMatchesRealTree(t *testing.T) {
	fx := validators.Fixtures(t)
	d, err := NewDir(filepath.Join(fx, "rom/system"), DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := d.Meta("bin/netd_fake")
	if err != nil {
		t.Fatal(err)
	}
	if m.UID != 0 || m.GID != 2000 || m.Mode.Perm() != 0o750 || m.SELinux() != "u:object_r:netd_exec:s0" {
		t.Fatalf("netd_fake meta %+v label %q", m, m.SELinux())
	}
	if m.Capabilities() != 1<<12|1<<13 { // CAP_NET_ADMIN, CAP_NET_RAW
		t.Fatalf("caps %#x", m.Capabilities())
	}
	l, err := d.Meta("bin/ls")
	if err != nil || l.Target != "toybox" {
		t.Fatalf("symlink: %+v %v", l, err)
	}
	n := 0
	if err := Walk(d, func(string, Meta) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n < 15 {
		t.Fatalf("walked only %d entries", n)
	}
	if _, err := os.Stat(filepath.Join(fx, "rom/system/bin/netd_fake")); err != nil {
		t.Fatal(err)
	}
}

func TestSplitDevInvertsMkdev(t *testing.T) {
	for _, c := range [][2]uint32{{1, 3}, {8, 300}, {259, 70000}, {4095, 1<<20 - 1}} {
		if ma, mi := SplitDev(Mkdev(c[0], c[1])); ma != c[0] || mi != c[1] {
			t.Errorf("SplitDev(Mkdev(%d, %d)) = %d, %d", c[0], c[1], ma, mi)
		}
	}
}
