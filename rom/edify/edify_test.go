package edify

import (
	"errors"
	"strings"
	"testing"

	"github.com/romforge/romforge/internal/failure"
)

// armaniScript is modelled on CyanogenMod 11 file-based OTA scripts for the Redmi 1S.
const armaniScript = `assert(getprop("ro.product.device") == "armani" || getprop("ro.build.product") == "armani" ||
       getprop("ro.product.device") == "HM1SW" || abort("This package is for device: armani,HM1SW; this device is " + getprop("ro.product.device") + "."););
ui_print("Target: Xiaomi/armani/armani:4.4.4/KTU84Q/\"test\":user/release-keys");
show_progress(0.750000, 0);
mount("ext4", "EMMC", "/dev/block/platform/msm_sdcc.1/by-name/system", "/system", "max_batch_time=0,commit=1,data=ordered,barrier=1,errors=panic,nodelalloc");
format("ext4", "EMMC", "/dev/block/platform/msm_sdcc.1/by-name/system", "0", "/system");
package_extract_dir("system", "/system");
symlink("toolbox", "/system/bin/cat", "/system/bin/ls",
        "/system/bin/ps");   # a comment
symlink("/system/lib/libGLESv2_adreno.so" + "", "/system/lib/egl/libGLESv2.so");
set_metadata_recursive("/system", "uid", 0, "gid", 0, "dmode", 0755, "fmode", 0644, "capabilities", 0x0, "selabel", "u:object_r:system_file:s0");
set_metadata_recursive("/system/bin", "uid", 0, "gid", 2000, "dmode", 0755, "fmode", 0755, "capabilities", 0x0, "selabel", "u:object_r:system_file:s0");
set_metadata("/system/bin/netd_fake", "uid", 0, "gid", 2000, "mode", 0750, "capabilities", 0x3000, "selabel", "u:object_r:netd_exec:s0");
set_perm_recursive(0, 0, 0755, 0644, "/system/etc/permissions", "/system/etc/init");
set_perm(1000, 1000, 0640, "/system/etc/hosts");
if getprop("ro.debuggable") == "1" then
  set_perm(0, 0, 06755, "/system/xbin/su");
else
  ui_print("user build");
endif;
set_perm(0, 0, 0644, "/system/" + getprop("ro.x"));
unmount("/system");
`

func TestArmaniScript(t *testing.T) {
	s, err := ParseScript(armaniScript)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.Devices, ",") != "armani,HM1SW" {
		t.Errorf("devices %v", s.Devices)
	}
	if len(s.Symlinks) != 4 || s.Symlinks[2] != (Symlink{"toolbox", "/system/bin/ps", 8}) || s.Symlinks[3].Target != "/system/lib/libGLESv2_adreno.so" {
		t.Errorf("symlinks %+v", s.Symlinks)
	}
	if len(s.Extracts) != 1 || s.Extracts[0] != (Extract{Source: "system", Dest: "/system", Dir: true, Line: s.Extracts[0].Line}) || s.Extracts[0].Line == 0 {
		t.Errorf("extracts %+v", s.Extracts)
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "line 21") {
		t.Errorf("warnings %v", s.Warnings)
	}
	def := Attrs{Mode: 0o644}
	for _, tc := range []struct {
		path string
		dir  bool
		want Attrs
	}{
		{"/system", true, Attrs{0, 0, 0o755, 0, "u:object_r:system_file:s0"}},
		{"/system/build.prop", false, Attrs{0, 0, 0o644, 0, "u:object_r:system_file:s0"}},
		{"/system/bin/toolbox", false, Attrs{0, 2000, 0o755, 0, "u:object_r:system_file:s0"}},
		{"/system/bin", true, Attrs{0, 2000, 0o755, 0, "u:object_r:system_file:s0"}},
		{"/system/bin/netd_fake", false, Attrs{0, 2000, 0o750, 0x3000, "u:object_r:netd_exec:s0"}},
		{"/system/etc/hosts", false, Attrs{1000, 1000, 0o640, 0, "u:object_r:system_file:s0"}},
		{"/system/etc/init/x.rc", false, Attrs{0, 0, 0o644, 0, "u:object_r:system_file:s0"}},
		{"/system/xbin/su", false, Attrs{0, 0, 0o6755, 0, "u:object_r:system_file:s0"}}, // both branches are read
		{"/system/binx", false, Attrs{0, 0, 0o644, 0, "u:object_r:system_file:s0"}},     // not under /system/bin
	} {
		if got := s.Resolve(tc.path, tc.dir, def); got != tc.want {
			t.Errorf("%s: got %+v want %+v", tc.path, got, tc.want)
		}
	}
}

func TestSyntax(t *testing.T) {
	for src, want := range map[string]string{
		`a("x\"y\\z\n\x41")`:            `a("x"y\z` + "\n" + `A")`,
		`!a() && b() || c() == "d"`:     `((!a() && b()) || (c() == "d"))`,
		`a() + "b" + c`:                 `((a() + "b") + "c")`,
		`a(); b(); c()`:                 `((a(); b()); c())`,
		`if a() then b(); c(); endif`:   `if a() then (b(); c()) endif`,
		`if a then b else c endif; d()`: `(if "a" then "b" else "c" endif; d())`,
		`f(1, 0x2, /sys/x.y:z)`:         `f("1", "0x2", "/sys/x.y:z")`,
		`(a());`:                        `a()`,
		"# only a comment\n":            `<nil>`,
	} {
		n, err := Parse(src)
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		if got := render(n); got != want {
			t.Errorf("%q: got %s want %s", src, got, want)
		}
	}
	for _, bad := range []string{`a(`, `"abc`, `a("\q")`, `a() b()`, `if a then b`, `a(,)`, `a $ b`, `"\x4"`, `)`, `a ==`, strings.Repeat("(", 1000) + "a" + strings.Repeat(")", 1000), strings.Repeat("!", 1000) + "a"} {
		if _, err := Parse(bad); !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%q: err = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestBadArguments(t *testing.T) {
	s, err := ParseScript(`set_perm("x", 0, 0644, "/a"); set_perm(0, 0, 0999, "/b"); set_perm(0, 0, "/c");
set_metadata("/d", "uid"); set_metadata("/e", "mode", "0644", "colour", "red"); symlink("t");
set_perm_recursive(0, 0, 0755, 077777, "/f");`)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Perms) != 1 || s.Perms[0].Path != "/e" || *s.Perms[0].Mode != 0o644 {
		t.Errorf("perms %+v", s.Perms)
	}
	// Only the unknown key is a warning; every other call is invalid.
	if len(s.Warnings) != 1 || len(s.Errors) != 6 {
		t.Errorf("warnings %d: %v; errors %d: %v", len(s.Warnings), s.Warnings, len(s.Errors), s.Errors)
	}
}

// Paths that climb out with "..", absolute or empty extract sources are errors, and the calls are
// dropped: a script cannot silently extract nothing or set permissions somewhere else.
func TestEscapingPaths(t *testing.T) {
	for _, src := range []string{
		`package_extract_dir("../..", "/system");`,
		`package_extract_dir("/etc", "/system");`,
		`package_extract_dir("", "/system");`,
		`package_extract_dir("system", "/system/../vendor");`,
		`package_extract_file("a/../../b", "/system/b");`,
		`symlink("toolbox", "/system/../../etc/passwd");`,
		`set_perm(0, 0, 0644, "/system/../x");`,
		`set_perm_recursive(0, 0, 0755, 0644, "/system/bin", "../x");`,
		`set_metadata("/system/../../x", "mode", "0644");`,
		`set_metadata_recursive("..", "dmode", "0755");`,
	} {
		s, err := ParseScript(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if len(s.Errors) != 1 || len(s.Extracts)+len(s.Symlinks)+len(s.Perms) != 0 {
			t.Errorf("%s: errors %v, extracts %v, symlinks %v, perms %v", src, s.Errors, s.Extracts, s.Symlinks, s.Perms)
		}
	}
	long := `set_perm(0, 0, 0644, "/system/` + strings.Repeat("../", 100000) + `");`
	s, err := ParseScript(long)
	if err != nil || len(s.Errors) != 1 || len(s.Errors[0]) > 300 {
		t.Fatalf("long path: %v, %d errors, first %d bytes", err, len(s.Errors), len(s.Errors[0]))
	}
}

func render(n *Node) string {
	if n == nil {
		return "<nil>"
	}
	switch n.Kind {
	case Literal:
		return `"` + n.Value + `"`
	case Call:
		var a []string
		for _, x := range n.Args {
			a = append(a, render(x))
		}
		return n.Value + "(" + strings.Join(a, ", ") + ")"
	case Not:
		return "!" + render(n.Args[0])
	case If:
		s := "if " + render(n.Args[0]) + " then " + render(n.Args[1])
		if len(n.Args) > 2 {
			s += " else " + render(n.Args[2])
		}
		return s + " endif"
	}
	if n.Kind == Seq {
		return "(" + render(n.Args[0]) + "; " + render(n.Args[1]) + ")"
	}
	op := map[Kind]string{Concat: "+", Eq: "==", Ne: "!=", And: "&&", Or: "||"}[n.Kind]
	return "(" + render(n.Args[0]) + " " + op + " " + render(n.Args[1]) + ")"
}

func FuzzUpdaterScript(f *testing.F) {
	f.Add(armaniScript)
	f.Add(`if a then b else c endif; d("\x41" + e)`)
	f.Add(`set_metadata_recursive("/system", "uid", 0, "gid", 0, "dmode", 0755, "fmode", 0644, "capabilities", 0x0, "selabel", "u:object_r:system_file:s0");`)
	f.Fuzz(func(t *testing.T, src string) {
		s, err := ParseScript(src)
		if err != nil {
			if !errors.Is(err, failure.ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		for _, p := range s.Perms {
			_ = s.Resolve(p.Path+"/x", false, Attrs{})
		}
	})
}
