package patches_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/patches"
	"github.com/romforge/romforge/patches/audit"
	"github.com/romforge/romforge/patches/miuitest"
)

func load(t *testing.T, names ...string) []*patches.Set {
	t.Helper()
	var out []*patches.Set
	for _, n := range names {
		s, err := patches.Load(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestBuiltinSetsLoadAndCarryReasons(t *testing.T) {
	names := patches.Builtin()
	for _, want := range []string{"xiaomi-cloud", "xiaomi-cloud-safe", "xiaomi-telemetry", "xiaomi-hardened", "android-telemetry"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Fatalf("built-in set %s missing (have %v)", want, names)
		}
	}
	for _, n := range names {
		s := load(t, n)[0]
		for _, st := range s.Steps {
			for _, it := range append(st.Items, st.ValueContains...) {
				if it.Reason == "" {
					t.Errorf("%s: %s item %q has no reason", n, st.Kind, it.Value)
				}
				if (st.Kind == "hosts" || st.Kind == "remove_packages") && it.Source == "" {
					t.Errorf("%s: %s item %q has no source", n, st.Kind, it.Value)
				}
			}
		}
		// Family rules reach components no list names: each says why and where the fact comes from.
		f := s.Families
		for _, r := range append(append(append(append([]patches.Rule{}, f.Packages...), f.Keep...), f.Props...), f.Protect...) {
			if r.Reason == "" || r.Source == "" {
				t.Errorf("%s: family rule %q needs a reason and a source", n, r.Value)
			}
		}
	}
	if s := load(t, "xiaomi-hardened")[0]; len(s.Families.Packages) == 0 || len(s.Families.Props) == 0 || len(s.Families.Keep) == 0 || len(s.Families.Protect) == 0 {
		t.Fatalf("xiaomi-hardened lost its family rules: %+v", s.Families)
	}
}

func TestBadSets(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct{ body, want string }{
		"unknown-kind.yaml":  {"name: x\nsteps:\n  - kind: explode\n", "unknown-kind.yaml:3: step 1 (explode): unknown step kind"},
		"bad-yaml.yaml":      {"name: x\nsteps: [\n", "bad-yaml.yaml"},
		"unknown-field.yaml": {"name: x\ncolour: red\n", "line 2: field colour not found"},
		"bad-host.yaml":      {"name: x\nsteps:\n  - kind: hosts\n    items: [{value: 'not a host!', reason: r}]\n", "not a hostname"},
		"no-reason.yaml":     {"name: x\nfamilies:\n  props: [{value: 'persist.sys.x.*'}]\n", `families.props: "persist.sys.x.*" needs a reason`},
		"bad-accept.yaml":    {"name: x\naccept: [{value: 'a[', reason: r}]\n", `accept: bad glob "a["`},
	}
	for file, tc := range cases {
		p := filepath.Join(dir, file)
		os.WriteFile(p, []byte(tc.body), 0o644)
		_, err := patches.Load(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: err = %v, want %q", file, err, tc.want)
		}
	}
	if _, err := patches.Load("no-such-set"); !errors.Is(err, failure.ErrUsage) {
		t.Errorf("unknown set: %v", err)
	}
}

func TestHardenedPatchThenAuditClean(t *testing.T) {
	ctx := context.Background()
	parts := miuitest.Partitions(miuitest.Options{})
	trees := map[string]tree.Tree{}
	for k, v := range parts {
		trees[k] = v
	}
	sets := load(t, "xiaomi-hardened")
	rules := audit.RulesFrom(sets...)

	before, err := audit.Scan(ctx, trees, rules, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	foundPkg, foundHost := map[string]bool{}, map[string]bool{}
	for _, f := range before.Findings {
		if f.Kind == "package" {
			foundPkg[f.Match] = true
		} else {
			foundHost[f.Match] = true
		}
	}
	for _, p := range miuitest.Planted.Packages {
		if !foundPkg[p] {
			t.Errorf("audit before: planted package %s not found", p)
		}
	}
	for _, h := range miuitest.Planted.Hosts {
		if !foundHost[h] {
			t.Errorf("audit before: planted host %s not found (found %v)", h, foundHost)
		}
	}
	// The dex inside an APK is reported with its inner path.
	inner := false
	for _, f := range before.Findings {
		if f.Path == "app/AnalyticsCore/AnalyticsCore.apk" && f.Inner == "classes2.dex" && f.Match == "data.mistat.intl.xiaomi.com" {
			inner = true
		}
	}
	if !inner {
		t.Error("host in classes2.dex of an APK not reported with its inner path")
	}

	target := patches.NewTarget(trees)
	rep, err := patches.Apply(ctx, target, sets, patches.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Removed == 0 || rep.Changed == 0 {
		t.Fatalf("report: %d removed, %d changed", rep.Removed, rep.Changed)
	}
	// The base trees are untouched.
	if _, err := parts["system"].Meta("app/XMSF/XMSF.apk"); err != nil {
		t.Fatal("base tree modified")
	}
	after := map[string]tree.Tree{}
	for _, p := range target.Partitions() {
		after[p] = target.Overlay(p)
	}
	res, err := audit.Scan(ctx, after, rules, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Findings {
		t.Errorf("audit after patch: %s", f)
	}
	// What no set touches survives, byte for byte where unchanged.
	sys := target.Overlay("system")
	for _, p := range []string{"app/Calculator/Calculator.apk", "priv-app/Settings/Settings.apk", "etc/init/keep.rc", "bin/netd"} {
		if !sys.Exists(p) {
			t.Errorf("%s was removed", p)
		}
	}
	perm, _ := fs.ReadFile(sys, "etc/permissions/privapp-permissions-miui.xml")
	if strings.Contains(string(perm), "com.xiaomi.xmsf") || !strings.Contains(string(perm), `<privapp-permissions package="com.android.settings">`) || !strings.Contains(string(perm), "<!-- MIUI privileged") {
		t.Errorf("permissions xml after patch:\n%s", perm)
	}
	hosts, _ := fs.ReadFile(sys, "etc/hosts")
	if !strings.HasPrefix(string(hosts), "127.0.0.1       localhost\n") || !strings.Contains(string(hosts), "0.0.0.0 api.xmpush.xiaomi.com\n") {
		t.Errorf("hosts:\n%s", hosts)
	}
	prop, _ := fs.ReadFile(sys, "build.prop")
	if strings.Contains(string(prop), "xiaomi.com") || !strings.Contains(string(prop), "dalvik.vm.heapsize=512m\n# end build properties\n") {
		t.Errorf("build.prop:\n%s", prop)
	}
	rc, _ := fs.ReadFile(sys, "etc/init/micloud.rc")
	if strings.Contains(string(rc), "service micloud_sync") || !strings.Contains(string(rc), "# romforge: start micloud_sync") {
		t.Errorf("micloud.rc:\n%s", rc)
	}
	mq, _ := fs.ReadFile(sys, "etc/init/mqsasd.rc")
	if !strings.Contains(string(mq), "    disabled\n") {
		t.Errorf("mqsasd.rc:\n%s", mq)
	}
	// Labels and modes of edited files are kept.
	if m, _ := sys.Meta("etc/hosts"); m.SELinux() != "u:object_r:system_file:s0" || m.Mode.Perm() != 0o644 {
		t.Errorf("hosts meta: %+v", m)
	}

	// Idempotent: a second run over the result changes nothing.
	again := patches.NewTarget(after)
	rep2, err := patches.Apply(ctx, again, sets, patches.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep2.Removed+rep2.Added+rep2.Changed != 0 {
		t.Errorf("second run changed things: %+v", rep2.Steps)
	}
}

func TestSafeVariantKeepsBootCritical(t *testing.T) {
	target := patches.NewTarget(miuitest.Trees(miuitest.Options{}))
	rep, err := patches.Apply(context.Background(), target, load(t, "xiaomi-cloud-safe"), patches.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !target.Exists("system/priv-app/FindDevice/FindDevice.apk") {
		t.Fatal("safe set removed Find Device")
	}
	if target.Exists("system/app/XMSF") {
		t.Fatal("safe set kept MiPush")
	}
	noted := false
	for _, st := range rep.Steps {
		for _, n := range st.Notes {
			noted = noted || strings.Contains(n, "com.xiaomi.finddevice: boot-critical") || strings.Contains(n, "kept com.xiaomi.finddevice")
		}
	}
	if !noted {
		t.Error("report does not say what was kept and why")
	}
}

func TestReplaceRefusesLengthChangeInBinary(t *testing.T) {
	m := tree.NewMem()
	m.MkdirAll("lib", tree.Meta{Mode: 0o755})
	m.Put("lib/x.so", tree.Meta{Mode: 0o644}, []byte("\x7fELF\x00https://i.mi.com\x00"))
	target := patches.NewTarget(map[string]tree.Tree{"system": m})
	dir := t.TempDir()
	p := filepath.Join(dir, "r.yaml")
	os.WriteFile(p, []byte("name: r\nsteps:\n  - kind: replace\n    files: [system/lib/*.so]\n    replacements: [{from: 'https://i.mi.com', to: 'https://localhost', reason: test}]\n"), 0o644)
	s, err := patches.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := patches.Apply(context.Background(), target, []*patches.Set{s}, patches.Options{}); err == nil || !strings.Contains(err.Error(), "changes the length") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := fs.ReadFile(m, "lib/x.so"); !strings.Contains(string(b), "i.mi.com") {
		t.Fatal("source changed")
	}
}

func TestDirTargetCommitAndEscape(t *testing.T) {
	dir := t.TempDir()
	sys := filepath.Join(dir, "system")
	os.MkdirAll(filepath.Join(sys, "etc"), 0o755)
	os.MkdirAll(filepath.Join(sys, "app/XMSF"), 0o755)
	os.WriteFile(filepath.Join(sys, "etc/hosts"), []byte("127.0.0.1 localhost\n"), 0o644)
	os.WriteFile(filepath.Join(sys, "build.prop"), []byte("ro.x=1\n"), 0o644)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("keep"), 0o644)
	// A symlink pointing out of the tree must never be followed.
	os.Symlink(outside, filepath.Join(sys, "app/XMSF/escape"))
	dt, trees, err := patches.OpenDir(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	target := patches.NewTarget(trees)
	sets := load(t, "xiaomi-cloud")
	if _, err := patches.Apply(context.Background(), target, sets, patches.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := dt.Commit(target); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(sys, "etc/hosts"))
	if !strings.Contains(string(b), "0.0.0.0 account.xiaomi.com") {
		t.Fatalf("hosts not written: %s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "keep" {
		t.Fatal("file outside the tree changed")
	}
	// remove_paths through the symlink is refused (nothing outside is touched).
	p := filepath.Join(t.TempDir(), "esc.yaml")
	os.WriteFile(p, []byte("name: esc\nsteps:\n  - kind: remove_paths\n    items: [{value: system/app/XMSF/escape/secret, reason: test}]\n"), 0o644)
	s, err := patches.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	_, trees, _ = patches.OpenDir(dir, "")
	target = patches.NewTarget(trees)
	patches.Apply(context.Background(), target, []*patches.Set{s}, patches.Options{})
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Fatal("symlink escape removed a file outside the tree")
	}
}

func TestEditRC(t *testing.T) {
	in := "on boot\n    start foo\n\nservice foo /bin/foo\n    class main\n\nservice bar /bin/bar\n    class main\n"
	out, detail := patches.EditRC(in, map[string]bool{"foo": true}, false)
	want := "on boot\n    # romforge: start foo\n\nservice foo /bin/foo\n    disabled\n    class main\n\nservice bar /bin/bar\n    class main\n"
	if out != want {
		t.Fatalf("disable:\n%s\nwant:\n%s", out, want)
	}
	if len(detail) != 2 {
		t.Fatalf("detail %v", detail)
	}
	out2, _ := patches.EditRC(out, map[string]bool{"foo": true}, false)
	if out2 != out {
		t.Fatal("disable is not idempotent")
	}
	out, _ = patches.EditRC(in, map[string]bool{"foo": true}, true)
	if strings.Contains(out, "service foo") || !strings.Contains(out, "service bar") {
		t.Fatalf("remove:\n%s", out)
	}
}

func FuzzParseSet(f *testing.F) {
	// Seeds stay small (the first lines of the big sets still hold every step kind they use), so
	// executions and minimizations are quick.
	for _, n := range patches.Builtin() {
		b, _ := os.ReadFile(filepath.Join("sets", n+".yaml"))
		for len(b) > 2048 {
			b = b[:bytes.LastIndexByte(b[:2048], '\n')+1]
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := patches.Parse("fuzz.yaml", b)
		if err == nil && s.Name == "" {
			t.Fatal("set without name accepted")
		}
	})
}
