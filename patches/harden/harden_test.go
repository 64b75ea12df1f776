package harden

import (
	"bytes"
	"context"
	"io/fs"
	"strings"
	"testing"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/patches"
	"github.com/romforge/romforge/patches/audit"
	"github.com/romforge/romforge/patches/cloudgen"
)

var setCache = map[string]*patches.Set{}

func loadSets(t testing.TB, names ...string) []*patches.Set {
	var out []*patches.Set
	for _, n := range names {
		if s := setCache[n]; s != nil {
			out = append(out, s)
			continue
		}
		s, err := patches.Load(n)
		if err != nil {
			t.Fatal(err)
		}
		setCache[n] = s
		out = append(out, s)
	}
	return out
}

func readTarget(t *patches.Target, p string) ([]byte, error) {
	b, _, err := t.ReadFile(p)
	return b, err
}

// checkHardened asserts the property every generated ROM must have after hardening: nothing is left,
// every planted component is gone or neutralized, and every decoy is untouched.
func checkHardened(t *testing.T, rom *cloudgen.ROM, tg *patches.Target, res *Result) {
	t.Helper()
	o := res.Outcome
	if !o.Clean() {
		t.Fatalf("seed %d: left after %d rounds: %v", rom.Seed, o.Rounds, o.Left)
	}
	if len(o.Before) == 0 {
		t.Fatalf("seed %d: nothing found before hardening", rom.Seed)
	}
	// The final audit, from scratch, agrees.
	after, err := audit.Scan(context.Background(), Trees(tg), audit.RulesFrom(loadSets(t, "xiaomi-hardened")...), audit.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	plan := Plan(after.Findings, loadSets(t, "xiaomi-hardened"), tg)
	if len(plan.Left) > 0 || len(plan.Steps) > 0 {
		t.Fatalf("seed %d: a fresh audit still finds %v", rom.Seed, after.Findings)
	}
	for _, p := range rom.Planted {
		b, err := readTarget(tg, p.Path)
		switch p.Kind {
		case "apk", "daemon", "library":
			if err == nil {
				t.Fatalf("seed %d: planted %s %s (%s) still there", rom.Seed, p.Kind, p.Path, p.Name)
			}
		case "prop":
			if err == nil && bytes.Contains(b, []byte(p.Name+"=")) {
				t.Fatalf("seed %d: planted prop %s still in %s", rom.Seed, p.Name, p.Path)
			}
		case "config":
			if err == nil && bytes.Contains(bytes.ToLower(b), []byte(p.Host)) {
				t.Fatalf("seed %d: %s still names %s", rom.Seed, p.Path, p.Host)
			}
		}
		if p.Kind == "daemon" {
			// Its init service is disabled wherever it is defined.
			rcs, _ := tg.Glob("*/**/*.rc")
			for _, rc := range rcs {
				b, _ := readTarget(tg, rc)
				if i := strings.Index(string(b), "service "+p.Name+" "); i >= 0 {
					block := string(b[i:])
					if j := strings.Index(block, "\non "); j >= 0 {
						block = block[:j]
					}
					if !strings.Contains(block, "\n    disabled\n") {
						t.Fatalf("seed %d: service %s in %s not disabled:\n%s", rom.Seed, p.Name, rc, b)
					}
					if strings.Contains(string(b), "\n    start "+p.Name+"\n") {
						t.Fatalf("seed %d: %s still starts %s", rom.Seed, rc, p.Name)
					}
				}
			}
		}
	}
	for _, p := range rom.DecoyFiles {
		part, rel, _ := strings.Cut(p, "/")
		want, err := rom.Parts[part].ReadFile(rel)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readTarget(tg, p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("seed %d: decoy %s changed or removed (%v)", rom.Seed, p, err)
		}
	}
	for f, lines := range rom.DecoyProps {
		b, err := readTarget(tg, f)
		if err != nil {
			t.Fatalf("seed %d: %s: %v", rom.Seed, f, err)
		}
		for _, l := range lines {
			if !bytes.Contains(b, []byte(l+"\n")) {
				t.Fatalf("seed %d: decoy property %q lost from %s:\n%s", rom.Seed, l, f, b)
			}
		}
	}
	for f, svcs := range rom.DecoyServices {
		b, _ := readTarget(tg, f)
		for _, s := range svcs {
			if !strings.Contains(string(b), "service "+s+" ") || strings.Contains(string(b), "disabled") {
				t.Fatalf("seed %d: decoy service %s in %s touched", rom.Seed, s, f)
			}
		}
	}
	hosts, err := readTarget(tg, "system/etc/hosts")
	if err != nil || !bytes.Contains(hosts, []byte("0.0.0.0 api.xmpush.xiaomi.com\n")) {
		t.Fatalf("seed %d: hosts file missing or without blocking (%v)", rom.Seed, err)
	}
	if m, err := tg.Meta("system/etc/hosts"); err != nil || m.Mode.Perm() != 0o644 || m.SELinux() != "u:object_r:system_file:s0" || m.UID != 0 {
		t.Fatalf("seed %d: hosts meta %+v", rom.Seed, m)
	}
}

// TestClosureConvergesOnRandomROMs is the property test: on hundreds of ROMs with cloud components
// planted under random names and places, the sets plus the closure leave nothing unaccepted and touch
// no decoy.
func TestClosureConvergesOnRandomROMs(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 200
	}
	sets := loadSets(t, "xiaomi-hardened")
	for seed := uint64(1); seed <= uint64(n); seed++ {
		rom := cloudgen.Generate(seed)
		tg := patches.NewTarget(rom.Trees())
		res, err := Run(context.Background(), tg, sets, Options{Workers: 1})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		checkHardened(t, rom, tg, res)
	}
}

// TestSetsAloneDoNotConverge shows why the closure exists: the sets by themselves leave planted
// components the audit still finds.
func TestSetsAloneDoNotConverge(t *testing.T) {
	sets := loadSets(t, "xiaomi-hardened")
	dirty := 0
	for seed := uint64(1); seed <= 20; seed++ {
		rom := cloudgen.Generate(seed)
		tg := patches.NewTarget(rom.Trees())
		if _, err := patches.Apply(context.Background(), tg, sets, patches.Options{}); err != nil {
			t.Fatal(err)
		}
		res, err := audit.Scan(context.Background(), Trees(tg), audit.RulesFrom(sets...), audit.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Clean() {
			dirty++
		}
	}
	if dirty != 20 {
		t.Fatalf("the sets alone cleaned %d of 20 generated ROMs; the generator no longer plants what only the closure removes", 20-dirty)
	}
}

func TestGeneratorIsSeeded(t *testing.T) {
	a, b, c := cloudgen.Generate(7), cloudgen.Generate(7), cloudgen.Generate(8)
	dump := func(r *cloudgen.ROM) string {
		var sb strings.Builder
		for _, p := range cloudgen.Partitions {
			fs.WalkDir(r.Parts[p], ".", func(n string, d fs.DirEntry, err error) error {
				b, _ := r.Parts[p].ReadFile(n)
				sb.WriteString(p + "/" + n + "\x00" + string(b) + "\x00")
				return nil
			})
		}
		return sb.String()
	}
	if dump(a) != dump(b) {
		t.Fatal("same seed, different trees")
	}
	if dump(a) == dump(c) {
		t.Fatal("different seeds, same trees")
	}
}

// TestAcceptList: a user's accept rule keeps a finding and reports it as accepted, with the reason; a
// -safe set accepts boot-critical packages instead of removing them.
func TestAcceptList(t *testing.T) {
	rom := cloudgen.Generate(3)
	var conf string
	for _, p := range rom.Planted {
		if p.Kind == "config" && p.Path != "system/etc/hosts" {
			conf = p.Path
		}
	}
	if conf == "" {
		t.Fatal("seed 3 plants no config file")
	}
	user, err := patches.Parse("mine.yaml", []byte("name: mine\ninclude: []\nsteps: []\naccept:\n  - {value: \""+conf+"\", reason: our own telemetry relay}\n"))
	if err != nil {
		t.Fatal(err)
	}
	sets := append(loadSets(t, "xiaomi-hardened"), user)
	tg := patches.NewTarget(rom.Trees())
	res, err := Run(context.Background(), tg, sets, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Outcome.Clean() {
		t.Fatalf("left: %v", res.Outcome.Left)
	}
	found := false
	for _, a := range res.Outcome.Accepted {
		if a.By == "accept" && a.Reason == "our own telemetry relay" && a.Finding.Partition+"/"+a.Finding.Path == conf {
			found = true
		}
	}
	if !found {
		t.Fatalf("accepted: %+v", res.Outcome.Accepted)
	}
	part, rel, _ := strings.Cut(conf, "/")
	want, _ := rom.Parts[part].ReadFile(rel)
	if got, _ := readTarget(tg, conf); !bytes.Equal(got, want) {
		t.Fatal("an accepted file was edited")
	}
}

func TestBootCriticalKeptBySafeSet(t *testing.T) {
	m := tree.NewMem()
	dir := tree.Meta{Mode: fs.ModeDir | 0o755}
	m.MkdirAll("app/FindDevice", dir)
	m.Put("build.prop", tree.Meta{Mode: 0o644}, []byte("ro.x=1\n"))
	m.MkdirAll("etc", dir)
	m.Put("app/FindDevice/FindDevice.apk", tree.Meta{Mode: 0o644}, apkWith("com.xiaomi.finddevice", "https://find.api.micloud.xiaomi.net/"))
	for _, tc := range []struct {
		set    string
		remove bool
	}{{"xiaomi-hardened", true}, {"xiaomi-cloud-safe", false}} {
		tg := patches.NewTarget(map[string]tree.Tree{"system": m})
		res, err := Run(context.Background(), tg, loadSets(t, tc.set), Options{})
		if err != nil {
			t.Fatal(err)
		}
		gone := !tg.Exists("system/app/FindDevice/FindDevice.apk")
		if gone != tc.remove || !res.Outcome.Clean() {
			t.Fatalf("%s: removed %v, left %v, accepted %v", tc.set, gone, res.Outcome.Left, res.Outcome.Accepted)
		}
		if tc.remove && (len(res.Outcome.Warnings) == 0 || !strings.Contains(res.Outcome.Warnings[0], "com.xiaomi.finddevice")) {
			t.Fatalf("%s: boot-critical removal without a warning: %v", tc.set, res.Outcome.Warnings)
		}
		if !tc.remove {
			ok := false
			for _, a := range res.Outcome.Accepted {
				ok = ok || a.By == "boot_critical"
			}
			if !ok {
				t.Fatalf("%s: boot-critical package not listed as accepted: %+v", tc.set, res.Outcome.Accepted)
			}
		}
	}
}

func TestNeutralHost(t *testing.T) {
	for n := 1; n < 80; n++ {
		h := patches.NeutralHost(n)
		if len(h) != n {
			t.Fatalf("NeutralHost(%d) = %q", n, h)
		}
	}
}

func apkWith(pkg, url string) []byte {
	return apkBuild(pkg, map[string][]byte{"classes.dex": append([]byte("dex\n035\x00"), url...)})
}

// TestProtectedAndKeptAreAccepted: hosts in the boot class path, a HAL and a kept package's compiled
// code are accepted (with their rules' reasons), and those files stay as they were.
func TestProtectedAndKeptAreAccepted(t *testing.T) {
	m := tree.NewMem()
	dir := tree.Meta{Mode: fs.ModeDir | 0o755}
	file := tree.Meta{Mode: 0o644}
	elf := func(s string) []byte { return []byte("\x7fELF\x02\x01\x01\x00" + s + "\x00") }
	for _, d := range []string{"framework/oat/arm64", "priv-app/SecurityCenter/oat/arm64", "etc", "bin/hw"} {
		m.MkdirAll(d, dir)
	}
	m.Put("build.prop", file, []byte("ro.x=1\n"))
	files := map[string][]byte{
		"framework/oat/arm64/services.odex":               elf("https://api.sec.miui.com/"),
		"priv-app/SecurityCenter/SecurityCenter.apk":      apkWith("com.miui.securitycenter", "https://flash.sec.intl.miui.com/"),
		"priv-app/SecurityCenter/oat/arm64/Security.odex": elf("https://auth.be.sec.miui.com/"),
		"bin/hw/vendor.qti.hardware.perf@2.0-service":     elf("https://perf.cfg.xiaomi.net/"),
	}
	for p, b := range files {
		m.Put(p, file, b)
	}
	tg := patches.NewTarget(map[string]tree.Tree{"system": m})
	res, err := Run(context.Background(), tg, loadSets(t, "xiaomi-hardened"), Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Outcome.Clean() || len(res.Outcome.Accepted) < 4 {
		t.Fatalf("left %v, accepted %+v", res.Outcome.Left, res.Outcome.Accepted)
	}
	by := map[string]bool{}
	for _, a := range res.Outcome.Accepted {
		by[a.By] = true
		if a.Reason == "" || a.Rule == "" {
			t.Fatalf("accepted without rule or reason: %+v", a)
		}
	}
	if !by["protect"] || !by["keep"] {
		t.Fatalf("accepted by %v", by)
	}
	for p, want := range files {
		got, err := readTarget(tg, "system/"+p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s changed or removed (%v)", p, err)
		}
	}
}

// TestStrayAPKRemoved: an APK outside the app folders that holds a cloud host is removed as a file.
func TestStrayAPKRemoved(t *testing.T) {
	m := tree.NewMem()
	dir := tree.Meta{Mode: fs.ModeDir | 0o755}
	m.MkdirAll("etc/stray", dir)
	m.Put("build.prop", tree.Meta{Mode: 0o644}, []byte("ro.x=1\n"))
	m.Put("etc/stray/Helper.apk", tree.Meta{Mode: 0o644}, apkWith("net.qq.helper", "https://h.api.micloud.xiaomi.net/"))
	tg := patches.NewTarget(map[string]tree.Tree{"system": m})
	res, err := Run(context.Background(), tg, loadSets(t, "xiaomi-hardened"), Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Outcome.Clean() || tg.Exists("system/etc/stray/Helper.apk") {
		t.Fatalf("left %v", res.Outcome.Left)
	}
}
