package xiaomi

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/romforge/romforge/internal/failure"
)

const chooseAll = `fastboot $* getvar product 2>&1 | grep "^product: *alioth"
if [ $? -ne 0  ] ; then echo "Missmatching image and device"; exit 1; fi
fastboot $* flash xbl_ab ` + "`dirname $0`" + `/images/xbl.elf
fastboot $* flash boot_ab ` + "`dirname $0`" + `/images/boot.img
fastboot $* flash super ` + "`dirname $0`" + `/images/super.img
fastboot $* flash userdata ` + "`dirname $0`" + `/images/userdata.img
fastboot $* erase metadata
fastboot $* format userdata
fastboot $* -w
fastboot $* set_active a
fastboot $* reboot
`

// writeROM makes an extracted ROM folder holding the given scripts (name → text).
func writeROM(t *testing.T, scripts map[string]string) *ROM {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	for n, src := range scripts {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ops(steps []Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, strings.TrimSpace(s.Op+" "+s.Partition))
	}
	return out
}

func TestChooseKeepsDataWithoutExceptStorage(t *testing.T) {
	for _, name := range []string{"flash_all.sh", "flash_all.bat"} {
		src := chooseAll
		if strings.HasSuffix(name, ".bat") {
			src = strings.NewReplacer("`dirname $0`/images/", `%~dp0images\`, "$*", "%*", "\n", "\r\n").Replace(src)
		}
		r := writeROM(t, map[string]string{name: src})
		c, err := r.Choose("", false)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"flash xbl", "flash boot", "flash super", "set_active", "reboot"}; !reflect.DeepEqual(ops(c.Steps), want) {
			t.Errorf("%s: steps %v, want %v", name, ops(c.Steps), want)
		}
		if want := []string{"flash userdata", "erase metadata", "format userdata", "wipe"}; !reflect.DeepEqual(ops(c.Dropped), want) {
			t.Errorf("%s: dropped %v, want %v", name, ops(c.Dropped), want)
		}
		if !c.KeepsData || c.Script != name {
			t.Errorf("%s: choice %+v", name, c)
		}
		notes := strings.Join(c.Notes, "\n")
		for _, w := range []string{"no flash_all_except_storage", "line 6", "line 9 (fastboot -w)", "--wipe"} {
			if !strings.Contains(notes, w) {
				t.Errorf("%s: notes do not say %q:\n%s", name, w, notes)
			}
		}
		// --wipe and --script all run the script as written.
		for _, tc := range []struct {
			script string
			wipe   bool
		}{{"", true}, {ScriptAll, false}} {
			c, err := r.Choose(tc.script, tc.wipe)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Steps, r.Scripts[name].Steps) || c.KeepsData || len(c.Dropped) != 0 {
				t.Errorf("%s %+v: steps %v", name, tc, ops(c.Steps))
			}
		}
	}
}

func TestChoosePrefersExceptStorage(t *testing.T) {
	except := strings.Replace(chooseAll, "fastboot $* flash userdata `dirname $0`/images/userdata.img\nfastboot $* erase metadata\nfastboot $* format userdata\nfastboot $* -w\n", "", 1)
	lock := strings.Replace(chooseAll, "fastboot $* reboot", "fastboot $* oem lock\nfastboot $* reboot", 1)
	r := writeROM(t, map[string]string{"flash_all.sh": chooseAll, "flash_all_except_storage.sh": except, "flash_all_lock.sh": lock})
	c, err := r.Choose("", false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Script != "flash_all_except_storage.sh" || !c.KeepsData || len(c.Dropped) != 0 || !reflect.DeepEqual(c.Steps, r.Scripts["flash_all_except_storage.sh"].Steps) {
		t.Errorf("choice %+v", c)
	}
	if len(c.Notes) != 1 || !strings.Contains(c.Notes[0], "user data kept: flash_all_except_storage.sh") {
		t.Errorf("notes %q", c.Notes)
	}
	if in := r.Info(); in.DefaultScript != "flash_all.sh" || in.FlashScript != "flash_all_except_storage.sh" || !reflect.DeepEqual(in.FlashNotes, c.Notes) {
		t.Errorf("info: default %s, flash %s, notes %q", in.DefaultScript, in.FlashScript, in.FlashNotes)
	}
	if c, err := r.Choose(ScriptExceptStorage, true); err != nil || c.Script != "flash_all_except_storage.sh" {
		t.Errorf("named except-storage with --wipe: %+v %v", c, err)
	}
	if c, err := r.Choose("", true); err != nil || c.Script != "flash_all.sh" || c.KeepsData {
		t.Errorf("--wipe: %+v %v", c, err)
	}
	_, err = r.Choose(ScriptAllLock, false)
	if !errors.Is(err, failure.ErrRefused) || !errors.Is(err, ErrRelock) {
		t.Errorf("all-lock: %v", err)
	}
	if _, err := r.Choose("everything", false); !errors.Is(err, failure.ErrUsage) {
		t.Errorf("unknown script: %v", err)
	}
	// A named script the ROM lacks.
	r2 := writeROM(t, map[string]string{"flash_all_except_storage.bat": strings.ReplaceAll(except, "$*", "%*")})
	if _, err := r2.Choose(ScriptAll, false); !errors.Is(err, failure.ErrInvalid) {
		t.Errorf("--script all without flash_all: %v", err)
	}
	if c, err := r2.Choose("", false); err != nil || c.Script != "flash_all_except_storage.bat" || !c.KeepsData {
		t.Errorf("bat only: %+v %v", c, err)
	}
}

func TestParseWipeFlag(t *testing.T) {
	sc, err := ParseShell("flash_all.sh", "fastboot -w update rom.zip\nfastboot $* -s $SERIAL -w\nfastboot flash boot -w images/boot.img\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"wipe", "wipe", "flash boot", "wipe"}; !reflect.DeepEqual(ops(sc.Steps), want) {
		t.Errorf("steps %v, want %v (warnings %v)", ops(sc.Steps), want, sc.Warnings)
	}
}

// TestChooseRandomScripts: whatever a script holds, keeping data plans no step that touches user data,
// drops nothing else and keeps the order; --script all plans the script unchanged.
func TestChooseRandomScripts(t *testing.T) {
	rng := rand.New(rand.NewSource(17))
	parts := []string{"userdata", "metadata", "boot", "boot_ab", "userdata_a", "xbl_ab", "cache", "persist", "super", "modem_ab", "cust"}
	cmds := []func(p string) string{
		func(p string) string { return "flash " + p + " `dirname $0`/images/" + p + ".img" },
		func(p string) string { return "erase " + p },
		func(p string) string { return "format " + p },
		func(p string) string { return "format:ext4 " + p },
		func(string) string { return "-w" },
		func(string) string { return "set_active a" },
		func(string) string { return "reboot" },
		func(string) string { return "oem lock" },
	}
	for i := 0; i < 300; i++ {
		var b strings.Builder
		for n := rng.Intn(25); n > 0; n-- {
			fmt.Fprintf(&b, "fastboot $* %s\n", cmds[rng.Intn(len(cmds))](parts[rng.Intn(len(parts))]))
		}
		sc, err := ParseShell("flash_all.sh", b.String())
		if err != nil {
			t.Fatal(err)
		}
		r := &ROM{DefaultScript: "flash_all.sh", Scripts: map[string]*Script{"flash_all.sh": sc}}
		keep, err := r.Choose("", false)
		if err != nil {
			t.Fatal(err)
		}
		j := 0
		for _, s := range sc.Steps {
			touches := s.Op == OpWipe || strings.HasPrefix(s.Partition, "userdata") || strings.HasPrefix(s.Partition, "metadata")
			touches = touches && s.Op != OpSetActive && s.Op != OpReboot
			if touches {
				continue
			}
			if j >= len(keep.Steps) || keep.Steps[j] != s {
				t.Fatalf("script:\n%s\nkept %v: step %+v lost or out of order", b.String(), ops(keep.Steps), s)
			}
			j++
		}
		if j != len(keep.Steps) || !keep.KeepsData || len(keep.Dropped)+len(keep.Steps) != len(sc.Steps) {
			t.Fatalf("script:\n%s\nkept %v dropped %v", b.String(), ops(keep.Steps), ops(keep.Dropped))
		}
		all, err := r.Choose(ScriptAll, false)
		if err != nil || !slices.Equal(all.Steps, sc.Steps) {
			t.Fatalf("--script all: %v %v", err, all)
		}
	}
}

// FuzzChoose: whatever the script, choosing never panics and keeping data never plans a step that
// touches userdata or metadata.
func FuzzChoose(f *testing.F) {
	f.Add(chooseAll, false)
	f.Add("fastboot %* -w\r\nfastboot %* format:ext4 userdata_ab\r\n", true)
	f.Add("fastboot $* flash metadata_a x.img; fastboot -w update", false)
	f.Fuzz(func(t *testing.T, src string, batch bool) {
		name := "flash_all.sh"
		if batch {
			name = "flash_all.bat"
		}
		sc, err := ParseScript(name, src)
		if err != nil {
			return
		}
		r := &ROM{DefaultScript: name, Scripts: map[string]*Script{name: sc}}
		c, err := r.Choose("", false)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range c.Steps {
			if DestroysData(s) {
				t.Fatalf("kept step %+v touches user data", s)
			}
		}
		if len(c.Steps)+len(c.Dropped) != len(sc.Steps) {
			t.Fatalf("%d kept + %d dropped != %d steps", len(c.Steps), len(c.Dropped), len(sc.Steps))
		}
	})
}
