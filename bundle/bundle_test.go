package bundle

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash/plan"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/blockota"
)

func manifest() *Manifest {
	return &Manifest{Format: 1, Device: "lavender", Products: []string{"lavender"}, Romforge: "test", AntiVersion: 4,
		AntiRollback: devices.AntiRollback{Enforced: true, Var: "anti"},
		Steps: []plan.Step{
			{Op: plan.OpFlash, Partition: "boot", Image: "images/boot.img"},
			{Op: plan.OpFlash, Partition: "system", Image: "images/system.img"},
			{Op: plan.OpLock},
			{Op: plan.OpReboot},
		}}
}

// TestFlashShAgainstFakeFastboot runs flash.sh with a stand-in fastboot that answers getvar and logs
// every command, checking the product/anti refusals and the command order.
func TestFlashShAgainstFakeFastboot(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	script, bat := FlashScripts(manifest())
	if strings.Contains(script, "oem lock") || strings.Contains(script, "flashing lock") || strings.Contains(bat, "lock") && strings.Contains(bat, "flashing lock") {
		t.Fatal("script relocks")
	}
	if !strings.Contains(bat, "\r\n") || !strings.Contains(bat, "flash system images\\system.img") {
		t.Fatalf("bat:\n%s", bat)
	}
	os.WriteFile(filepath.Join(dir, "flash.sh"), []byte(script), 0o755)
	fake := filepath.Join(dir, "fake-fastboot")
	os.WriteFile(fake, []byte(`#!/bin/sh
echo "$@" >> "$LOG"
case "$*" in
  *"getvar product"*) echo "product: $PRODUCT" ;;
  *"getvar unlocked"*) echo "unlocked: yes" ;;
  *"getvar anti"*) echo "anti: $ANTI" ;;
esac
exit 0
`), 0o755)
	run := func(product, anti string) (int, string) {
		log := filepath.Join(dir, "log-"+product+anti)
		cmd := exec.Command(sh, filepath.Join(dir, "flash.sh"), "-s", "tcp:127.0.0.1:1")
		cmd.Env = append(os.Environ(), "FASTBOOT="+fake, "LOG="+log, "PRODUCT="+product, "ANTI="+anti)
		out, _ := cmd.CombinedOutput()
		b, _ := os.ReadFile(log)
		code := cmd.ProcessState.ExitCode()
		_ = out
		return code, string(b)
	}
	code, log := run("lavender", "4")
	want := "-s tcp:127.0.0.1:1 getvar product\n-s tcp:127.0.0.1:1 getvar unlocked\n-s tcp:127.0.0.1:1 getvar anti\n-s tcp:127.0.0.1:1 flash boot images/boot.img\n-s tcp:127.0.0.1:1 flash system images/system.img\n-s tcp:127.0.0.1:1 reboot\n"
	if code != 0 || log != want {
		t.Fatalf("exit %d, log:\n%s\nwant:\n%s", code, log, want)
	}
	if code, log := run("ginkgo", "4"); code != 3 || strings.Contains(log, "flash") {
		t.Fatalf("wrong product: exit %d log %s", code, log)
	}
	if code, log := run("lavender", "5"); code != 3 || strings.Contains(log, "flash") {
		t.Fatalf("anti lower: exit %d log %s", code, log)
	}
	if code, log := run("lavender", ""); code != 3 || strings.Contains(log, "flash") {
		t.Fatalf("anti unknown: exit %d log %s", code, log)
	}
}

func TestManifestPlanRefusesEscapes(t *testing.T) {
	dir := t.TempDir()
	m := manifest()
	if err := Write(dir, m); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil || got.Device != "lavender" || len(got.Steps) != 4 {
		t.Fatalf("%+v %v", got, err)
	}
	cat, _ := devices.Builtin()
	d, _ := cat.Lookup("lavender")
	p, err := Plan(dir, got, d)
	if err != nil || !filepath.IsAbs(p.Steps[0].Image) || !p.Modified {
		t.Fatalf("%+v %v", p, err)
	}
	got.Steps[0].Image = "../../etc/passwd"
	if _, err := Plan(dir, got, d); err == nil {
		t.Fatal("escaping image path accepted")
	}
	a, _ := cat.Lookup("armani")
	if _, err := Plan(dir, m, a); err == nil {
		t.Fatal("bundle for another device accepted")
	}
}

func TestRecoveryZip(t *testing.T) {
	sys := make([]byte, 64*4096)
	for i := 4096; i < 20*4096; i++ {
		sys[i] = byte(i * 13)
	}
	boot := bytes.Repeat([]byte("BOOT"), 1024)
	var buf bytes.Buffer
	err := RecoveryZip(context.Background(), &buf,
		map[string]image.Image{"system": image.New(bytes.NewReader(sys), int64(len(sys)))},
		map[string]image.Image{"boot": image.New(bytes.NewReader(boot), int64(len(boot)))},
		RecoveryOptions{Devices: []string{"armani"}, BlockPrefix: "/dev/block/platform/msm_sdcc.1/by-name", UpdateBinary: []byte("\x7fELF"), Time: time.Unix(1700000000, 0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	tl, err := blockota.Parse(bytes.NewReader(files["system.transfer.list"]))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "system.img")
	f, _ := os.Create(out)
	nd, err := blockota.OpenNewData(writeTemp(t, "system.new.dat.br", files["system.new.dat.br"]))
	if err != nil {
		t.Fatal(err)
	}
	if err := blockota.Apply(context.Background(), tl, nd, f, nil); err != nil {
		t.Fatal(err)
	}
	f.Truncate(int64(len(sys)))
	f.Close()
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, sys) {
		t.Fatal("block OTA in the recovery zip does not rebuild system")
	}
	us := string(files["META-INF/com/google/android/updater-script"])
	for _, want := range []string{`getprop("ro.product.device") == "armani"`, `block_image_update("/dev/block/platform/msm_sdcc.1/by-name/system", package_extract_file("system.transfer.list"), "system.new.dat.br", "system.patch.dat")`, `package_extract_file("boot.img", "/dev/block/platform/msm_sdcc.1/by-name/boot");`} {
		if !strings.Contains(us, want) {
			t.Errorf("updater-script lacks %s:\n%s", want, us)
		}
	}
	if !bytes.Equal(files["boot.img"], boot) {
		t.Fatal("boot image differs")
	}
	// Reproducible: the same inputs give the same bytes.
	var again bytes.Buffer
	RecoveryZip(context.Background(), &again,
		map[string]image.Image{"system": image.New(bytes.NewReader(sys), int64(len(sys)))},
		map[string]image.Image{"boot": image.New(bytes.NewReader(boot), int64(len(boot)))},
		RecoveryOptions{Devices: []string{"armani"}, BlockPrefix: "/dev/block/platform/msm_sdcc.1/by-name", UpdateBinary: []byte("\x7fELF"), Time: time.Unix(1700000000, 0).UTC()})
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Fatal("recovery zip is not reproducible")
	}
}

func writeTemp(t *testing.T, name string, b []byte) string {
	p := filepath.Join(t.TempDir(), name)
	os.WriteFile(p, b, 0o644)
	return p
}

// flash.bat makes the same pre-flight queries as flash.sh (product, unlocked, anti-rollback), each
// before the first write, and refuses with exit 3 like it.
func TestFlashBatChecksLikeFlashSh(t *testing.T) {
	m := manifest()
	for _, enforced := range []bool{false, true} {
		m.AntiRollback.Enforced = enforced
		if enforced && m.AntiRollback.Var == "" {
			m.AntiRollback.Var = "anti"
		}
		if enforced && m.AntiVersion < 0 {
			m.AntiVersion = 3
		}
		sh, bat := FlashScripts(m)
		getvar := regexp.MustCompile(`getvar ([a-z_-]+)`)
		var shVars, batVars []string
		for _, g := range getvar.FindAllStringSubmatch(sh, -1) {
			shVars = append(shVars, g[1])
		}
		for _, g := range getvar.FindAllStringSubmatch(bat, -1) {
			batVars = append(batVars, g[1])
		}
		if strings.Join(shVars, ",") != strings.Join(batVars, ",") {
			t.Errorf("anti-rollback enforced %v: flash.sh asks %v, flash.bat %v", enforced, shVars, batVars)
		}
		firstWrite := strings.Index(bat, " flash ")
		for _, v := range batVars {
			if i := strings.Index(bat, "getvar "+v); i < 0 || (firstWrite >= 0 && i > firstWrite) {
				t.Errorf("flash.bat asks %s after the first write", v)
			}
		}
		if !strings.Contains(bat, `if /i "%UNLOCKED%"=="no" (`) || strings.Count(bat, "exit /b 3") != strings.Count(sh, "exit 3") {
			t.Errorf("flash.bat does not refuse like flash.sh:\n%s", bat)
		}
	}
}
