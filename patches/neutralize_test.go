package patches

import (
	"bytes"
	"context"
	"io/fs"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/bootimg"
	"github.com/romforge/romforge/image/cpio"
)

func TestGlobMatch(t *testing.T) {
	for _, c := range []struct {
		glob, name string
		want       bool
	}{
		{"com.miui.cloud*", "com.miui.cloudservice.sysbase", true},
		{"com.miui.cloud*", "com.miui.home", false},
		{"persist.sys.xmsf.*", "persist.sys.xmsf.enabled", true},
		{"persist.sys.xmsf.*", "persist.sys.xmsfx", false},
		{"*/framework/**", "system/framework/oat/arm64/services.odex", true},
		{"*/framework/**", "system/app/framework.apk", false},
		{"*ramdisk/init", "boot-ramdisk/init", true},
		{"*ramdisk/init", "boot-ramdisk/init.rc", false},
		{"vendor/etc/*.conf", "vendor/etc/a/b.conf", false},
	} {
		if got := GlobMatch(c.glob, c.name); got != c.want {
			t.Errorf("GlobMatch(%q, %q) = %v", c.glob, c.name, got)
		}
	}
}

func TestContainsName(t *testing.T) {
	for _, c := range []struct {
		s, v string
		want bool
	}{
		{"https://api.xiaomi.com/x", "xiaomi.com", true},
		{"https://notxiaomi.com/x", "xiaomi.com", false},
		{"www.miami.com", "mi.com", false},
		{"--server I.MI.COM", "i.mi.com", true},
		{"/system/bin/micloud_sync", "micloud", true},
	} {
		if got := containsName(c.s, c.v); got != c.want {
			t.Errorf("containsName(%q, %q) = %v", c.s, c.v, got)
		}
	}
}

// TestReplaceHostProperty: on random bytes with hosts planted, the replacement keeps the length, removes
// every whole occurrence of the host and leaves names that merely end or start like it.
func TestReplaceHostProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		host := []string{"api.xiaomi.com", "i.mi.com", "a.b.miui.com", "xmpush.xiaomi.net"}[r.IntN(4)]
		var b bytes.Buffer
		for j := 0; j < 20; j++ {
			switch r.IntN(5) {
			case 0:
				b.WriteString(host + "/")
			case 1:
				b.WriteString("x" + host + "\x00") // a different, longer name
			case 2:
				b.WriteString(strings.ToUpper(host) + " ")
			default:
				junk := make([]byte, r.IntN(8))
				for k := range junk {
					junk[k] = " /:\x00\"="[r.IntN(6)]
				}
				b.Write(junk)
			}
		}
		in := b.Bytes()
		out, n := replaceHostBytes(in, host)
		if len(out) != len(in) {
			t.Fatalf("length %d → %d", len(in), len(out))
		}
		if strings.Count(strings.ToLower(string(out)), "x"+host) != strings.Count(strings.ToLower(string(in)), "x"+host) {
			t.Fatalf("a longer name was touched:\n%q\n%q", in, out)
		}
		// Whatever is left of the host is inside a longer name.
		if strings.Count(strings.ToLower(string(out)), host) != strings.Count(strings.ToLower(string(out)), "x"+host) {
			t.Fatalf("%s left after %d replacements:\n%q", host, n, out)
		}
	}
}

func bootWithRamdisk(t testing.TB) []byte {
	a := cpio.New()
	a.AddDir("sbin", 0o755, 0, 0)
	a.AddFile("init.rc", []byte("service x /sbin/x\n    class main\n"), 0o644, 0, 0)
	a.AddFile("sbin/x", []byte("\x7fELF api.xiaomi.com"), 0o755, 0, 0)
	rd := a.Bytes()
	args := bootimg.DefaultArgs()
	k := bytes.Repeat([]byte("K"), 2048)
	args.Kernel = image.New(bytes.NewReader(k), int64(len(k)))
	args.Ramdisk = image.New(bytes.NewReader(rd), int64(len(rd)))
	out, err := bootimg.Build(&args)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	b, _ := out.Bytes()
	return b
}

// FuzzReadBootRamdisks: hostile boot images give errors or trees, never a panic; what is read can be
// edited and written back.
func FuzzReadBootRamdisks(f *testing.F) {
	f.Add(bootWithRamdisk(f))
	f.Fuzz(fuzzBootRamdisk)
}

// TestReadBootRamdisksMutated runs the fuzz body over seeded random mutations in every plain test run.
func TestReadBootRamdisksMutated(t *testing.T) {
	seed := bootWithRamdisk(t)
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 500; i++ {
		b := append([]byte(nil), seed...)
		for j := 0; j < 1+r.IntN(6); j++ {
			b[r.IntN(len(b))] = byte(r.IntN(256))
		}
		if r.IntN(4) == 0 {
			b = b[:r.IntN(len(b))]
		}
		fuzzBootRamdisk(t, b)
	}
}

func fuzzBootRamdisk(t *testing.T, b []byte) {
	{
		rds, _, err := ReadBootRamdisks(bytes.NewReader(b), int64(len(b)), "boot")
		if err != nil {
			return
		}
		for _, rd := range rds {
			o := tree.NewOverlay(rd.Tree)
			tg := NewTarget(map[string]tree.Tree{rd.Name: o})
			var sr StepReport
			DisableServicesRunning(context.Background(), tg, []string{"/sbin/x"}, &sr)
			o.Remove("sbin/x")
			o.Put("new.rc", tree.Meta{Mode: 0o644}, []byte("on boot\n"))
			if _, err := ApplyToRamdisk(rd.Ramdisk, o); err != nil {
				continue
			}
			if _, err := rd.Ramdisk.Bytes(); err != nil {
				continue
			}
		}
	}
}

func TestRamdiskRoundTrip(t *testing.T) {
	rds, _, err := ReadBootRamdisks(bytes.NewReader(bootWithRamdisk(t)), int64(len(bootWithRamdisk(t))), "boot")
	if err != nil || len(rds) != 1 || rds[0].Name != "boot-ramdisk" {
		t.Fatalf("%v %v", rds, err)
	}
	o := tree.NewOverlay(rds[0].Tree)
	tg := NewTarget(map[string]tree.Tree{"boot-ramdisk": o})
	var sr StepReport
	names, err := DisableServicesRunning(context.Background(), tg, []string{"/sbin/x"}, &sr)
	if err != nil || len(names) != 1 || names[0] != "x" {
		t.Fatalf("disabled %v: %v", names, err)
	}
	if err := RemoveFile(context.Background(), tg, "boot-ramdisk/sbin/x", "test", &sr); err != nil {
		t.Fatal(err)
	}
	if _, err := ApplyToRamdisk(rds[0].Ramdisk, o); err != nil {
		t.Fatal(err)
	}
	if rds[0].Ramdisk.Lookup("sbin/x") != nil {
		t.Fatal("sbin/x still in the archive")
	}
	rc, _ := rds[0].Ramdisk.ReadFile("init.rc")
	if !strings.Contains(string(rc), "disabled") {
		t.Fatalf("init.rc: %s", rc)
	}
	if m, err := rds[0].Tree.Meta("sbin"); err != nil || !m.Mode.IsDir() || m.Mode&fs.ModePerm != 0o755 {
		t.Fatalf("sbin meta %+v %v", m, err)
	}
}

// TestHostsCreatedWhereMissing: a system image without /system/etc/hosts (or without /system/etc at
// all, plain or system-as-root without a build.prop at system/) gets one, root-owned, 0644, labelled
// like the directories above it.
func TestHostsCreatedWhereMissing(t *testing.T) {
	const label = "u:object_r:system_file:s0"
	dir := tree.Meta{Mode: fs.ModeDir | 0o755}
	dir.SetSELinux(label)
	for _, layout := range []struct {
		name string
		make func(m *tree.Mem)
		file string // where the hosts file must be inside the image
	}{
		{"plain, no etc", func(m *tree.Mem) { m.MkdirAll("bin", dir) }, "etc/hosts"},
		{"plain, etc without hosts", func(m *tree.Mem) { m.MkdirAll("etc/init", dir) }, "etc/hosts"},
		{"system-as-root without system/build.prop", func(m *tree.Mem) { m.MkdirAll("system/etc/init", dir); m.MkdirAll("proc", dir) }, "system/etc/hosts"},
	} {
		m := tree.NewMem()
		m.Put(".", dir, nil)
		layout.make(m)
		s, err := Load("xiaomi-cloud")
		if err != nil {
			t.Fatal(err)
		}
		tg := NewTarget(map[string]tree.Tree{"system": m})
		if _, err := Apply(context.Background(), tg, []*Set{s}, Options{}); err != nil {
			t.Fatalf("%s: %v", layout.name, err)
		}
		o := tg.Overlay("system")
		hm, err := o.Meta(layout.file)
		if err != nil {
			t.Fatalf("%s: no %s: %v", layout.name, layout.file, err)
		}
		if hm.Mode.Perm() != 0o644 || hm.UID != 0 || hm.GID != 0 || hm.SELinux() != label {
			t.Fatalf("%s: hosts meta %+v", layout.name, hm)
		}
		b, _ := fs.ReadFile(o, layout.file)
		if !bytes.Contains(b, []byte("127.0.0.1       localhost\n")) || !bytes.Contains(b, []byte("0.0.0.0 api.xmpush.xiaomi.com\n")) {
			t.Fatalf("%s: hosts:\n%s", layout.name, b)
		}
	}
}
