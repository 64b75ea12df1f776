package xiaomi

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
)

func fixtureTGZ(t *testing.T) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(validators.Fixtures(t), "fastboot", "armani_images_*.tgz"))
	if len(m) != 1 {
		t.Fatalf("fixture tgz: %v", m)
	}
	return m[0]
}

func TestFixtureROM(t *testing.T) {
	p := fixtureTGZ(t)
	rom, err := Open(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if rom.Root != strings.TrimSuffix(filepath.Base(p), ".tgz") || !rom.Compressed {
		t.Errorf("root %q compressed %v", rom.Root, rom.Compressed)
	}
	if !reflect.DeepEqual(rom.Products, []string{"armani"}) || rom.AntiVersion != -1 || rom.DefaultScript != "flash_all.sh" || rom.Relocks {
		t.Errorf("rom %+v", rom)
	}
	want := []Step{
		{Op: OpErase, Partition: "boot", Line: 3},
		{Op: OpFlash, Partition: "recovery", Image: "images/recovery.img", Line: 4},
		{Op: OpFlash, Partition: "system", Image: "images/system.img", Line: 5},
		{Op: OpFlash, Partition: "boot", Image: "images/boot.img", Line: 6},
		{Op: OpErase, Partition: "cache", Line: 7},
		{Op: OpReboot, Line: 8},
	}
	if !reflect.DeepEqual(rom.Steps, want) {
		t.Errorf("steps\n got %+v\nwant %+v", rom.Steps, want)
	}
	bat := rom.Scripts["flash_all.bat"]
	if bat == nil || !reflect.DeepEqual(bat.Products, []string{"armani"}) || len(bat.Steps) != 2 ||
		bat.Steps[0] != (Step{Op: OpFlash, Partition: "system", Image: "images/system.img", Line: 2}) || bat.Steps[1].Op != OpReboot {
		t.Errorf("bat %+v", bat)
	}
	if len(rom.Warnings) != 0 {
		t.Errorf("warnings %v", rom.Warnings)
	}

	// Extract, then check sizes, the tar offsets and the directory form against the tar tool's view.
	dir := t.TempDir()
	f, _ := os.Open(p)
	defer f.Close()
	if err := Extract(context.Background(), f, rom.Root, dir, nil, nil); err != nil {
		t.Fatal(err)
	}
	ref := t.TempDir()
	validators.Run(t, "tar", "-xzf", p, "-C", ref)
	raw := t.TempDir() + "/rom.tar"
	validators.Run(t, "sh", "-c", "gzip -dc '"+p+"' > "+raw)
	tarBytes, _ := os.ReadFile(raw)
	for _, im := range rom.Images {
		got, _ := os.ReadFile(filepath.Join(dir, im.Name))
		want, _ := os.ReadFile(filepath.Join(ref, rom.Root, im.Name))
		if len(want) == 0 || !bytes.Equal(got, want) || int64(len(want)) != im.Size {
			t.Errorf("%s: extracted %d bytes, tar has %d, listed %d", im.Name, len(got), len(want), im.Size)
		}
		if !bytes.Equal(tarBytes[im.Offset:im.Offset+im.Size], want) {
			t.Errorf("%s: offset %d does not point at its contents", im.Name, im.Offset)
		}
	}
	if len(rom.Images) != 3 {
		t.Errorf("images %+v", rom.Images)
	}
	d, err := Open(context.Background(), filepath.Join(ref, rom.Root))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Steps, rom.Steps) || !reflect.DeepEqual(d.Products, rom.Products) || len(d.Images) != 3 || d.Images[0].Offset != -1 {
		t.Errorf("dir ROM %+v", d)
	}
	if !Probe(bytes.NewReader(mustRead(t, p)), 1<<20) {
		t.Error("Probe rejects the fixture")
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Scripts written for these tests in the shape of current MiFlash packages for A/B phones.
const abFlashAll = `#!/bin/sh
fastboot $* getvar product 2>&1 | grep -E "^product: *(lisa|lisa_in)$"
if [ $? -ne 0 ] ; then echo "Mismatching image and device"; exit 1; fi
CURRENT_ANTI_VER=2
ver=` + "`fastboot $* getvar anti 2>&1 | grep anti: | awk '{print $2}'`" + `
if [ -z "$ver" ]; then ver=0; fi
if [ $ver -gt $CURRENT_ANTI_VER ]; then echo "Current device antirollback version is greater than this package"; exit 1; fi
fastboot $* erase boot_ab || exit 1
fastboot $* flash crclist ` + "`dirname $0`" + `/images/crclist.txt || exit 1
fastboot $* flash xbl_ab "$(dirname $0)/images/xbl.elf" || exit 1
fastboot $* flash boot_ab ` + "`dirname $0`" + `/images/boot.img || exit 1 # kernel
fastboot $* flash --slot=all vbmeta ` + "`dirname $0`" + `/images/vbmeta.img
fastboot $* flash super ` + "`dirname $0`" + `/images/super.img || exit 1
fastboot $* erase metadata; fastboot $* erase userdata
fastboot $* set_active a || exit 1
fastboot $* reboot || exit 1
`

const abFlashLock = `fastboot %* getvar product 2>&1 | findstr /r /c:"^product: *lisa" || echo Missmatching image and device
fastboot %* getvar product 2>&1 | findstr /r /c:"^product: *lisa" || exit /B 1
set CURRENT_ANTI_VER=2
for /f "tokens=2 delims=: " %%i in ('fastboot %* getvar anti 2^>^&1 ^| findstr /r /c:"anti:"') do (set version=%%i)
fastboot %* flash boot_ab %~dp0images\boot.img || @echo "Flash boot error" && exit /B 1
fastboot %* flash super %~dp0images\super.img || @echo "Flash super error" && exit /B 1
fastboot %* set_active a
fastboot %* oem lock
fastboot %* reboot
`

type entry struct {
	name, body string
	typ        byte
	link       string
}

func makeTar(t *testing.T, gz bool, ents []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: e.typ, Linkname: e.link}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	tw.Close()
	if zw != nil {
		zw.Close()
	}
	return buf.Bytes()
}

func TestABROM(t *testing.T) {
	top := "lisa_global_images_V14.0.6.0.TKOMIXM_20230705.0000.00_13.0_global/"
	ents := []entry{
		{name: top, typ: tar.TypeDir},
		{name: top + "images/", typ: tar.TypeDir},
		{name: top + "images/boot.img", body: "BOOT"},
		{name: top + "images/xbl.elf", body: "XBL"},
		{name: top + "images/vbmeta.img", body: "AVB0"},
		{name: top + "images/crclist.txt", body: "crc"},
		{name: top + "images/anti_version.txt", body: "3\n"},
		{name: top + "flash_all.sh", body: abFlashAll},
		{name: top + "flash_all_lock.bat", body: strings.ReplaceAll(abFlashLock, "\n", "\r\n")},
		{name: top + "misc.txt", body: "device=lisa\n"},
	}
	for _, gz := range []bool{true, false} {
		data := makeTar(t, gz, ents)
		rom, err := Read(context.Background(), bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(rom.Products, []string{"lisa", "lisa_in"}) || rom.AntiVersion != 3 || rom.Compressed != gz || rom.Misc != "device=lisa\n" {
			t.Errorf("rom %+v", rom)
		}
		sh := rom.Scripts["flash_all.sh"]
		if sh.AntiVersion != 2 || !sh.AntiCheck || sh.Relocks {
			t.Errorf("flash_all.sh %+v", sh)
		}
		want := []Step{
			{Op: OpErase, Partition: "boot", Slot: "all", Line: 8},
			{Op: OpFlash, Partition: "crclist", Image: "images/crclist.txt", Line: 9},
			{Op: OpFlash, Partition: "xbl", Image: "images/xbl.elf", Slot: "all", Line: 10},
			{Op: OpFlash, Partition: "boot", Image: "images/boot.img", Slot: "all", Line: 11},
			{Op: OpFlash, Partition: "vbmeta", Image: "images/vbmeta.img", Slot: "all", Line: 12},
			{Op: OpFlash, Partition: "super", Image: "images/super.img", Line: 13},
			{Op: OpErase, Partition: "metadata", Line: 14},
			{Op: OpErase, Partition: "userdata", Line: 14},
			{Op: OpSetActive, Slot: "a", Line: 15},
			{Op: OpReboot, Line: 16},
		}
		if !reflect.DeepEqual(rom.Steps, want) {
			t.Errorf("steps\n got %+v\nwant %+v", rom.Steps, want)
		}
		// super.img is flashed but missing; anti_version.txt disagrees with the script.
		if len(rom.Warnings) != 2 {
			t.Errorf("warnings %v", rom.Warnings)
		}
		lock := rom.Scripts["flash_all_lock.bat"]
		if !lock.Relocks || lock.AntiVersion != 2 || !reflect.DeepEqual(lock.Products, []string{"lisa"}) || lock.Steps[len(lock.Steps)-2].Op != OpLock ||
			lock.Steps[0] != (Step{Op: OpFlash, Partition: "boot", Image: "images/boot.img", Slot: "all", Line: 5}) {
			t.Errorf("lock script %+v", lock)
		}
		if !Probe(bytes.NewReader(data), 1<<20) {
			t.Error("Probe")
		}
	}
	if Probe(bytes.NewReader(makeTar(t, true, []entry{{name: "a/b.txt", body: "x"}})), 1<<20) {
		t.Error("Probe accepts an unrelated archive")
	}
	if _, err := Read(context.Background(), bytes.NewReader(makeTar(t, true, []entry{{name: "a/b.txt", body: "x"}}))); !errors.Is(err, failure.ErrInvalid) {
		t.Errorf("unrelated archive: %v", err)
	}
}

func TestExtractRefusesEscapes(t *testing.T) {
	for name, ents := range map[string][]entry{
		"dotdot":       {{name: "rom/images/../../evil", body: "x"}},
		"absolute":     {{name: "/tmp/evil", body: "x"}},
		"symlink out":  {{name: "rom/images/l", typ: tar.TypeSymlink, link: "../../../etc"}},
		"symlink abs":  {{name: "rom/images/l", typ: tar.TypeSymlink, link: "/etc/passwd"}},
		"hardlink out": {{name: "rom/images/h", typ: tar.TypeLink, link: "../x"}},
	} {
		dir := t.TempDir()
		ents = append([]entry{{name: "rom/flash_all.sh", body: "fastboot flash boot images/boot.img"}}, ents...)
		err := Extract(context.Background(), bytes.NewReader(makeTar(t, true, ents)), "rom", filepath.Join(dir, "out"), nil, nil)
		if !errors.Is(err, failure.ErrRefused) {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "evil")); err == nil {
			t.Errorf("%s: wrote outside", name)
		}
	}
	// An in-root symlink is fine (and not created); a truncated archive fails without a complete-looking file.
	dir := t.TempDir()
	data := makeTar(t, false, []entry{{name: "rom/images/l", typ: tar.TypeSymlink, link: "boot.img"}, {name: "rom/images/boot.img", body: strings.Repeat("b", 5000)}})
	if err := Extract(context.Background(), bytes.NewReader(data), "rom", dir, func(r string) bool { return r == "images/boot.img" }, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "images/boot.img")); len(b) != 5000 {
		t.Fatal("boot.img not extracted")
	}
	dir = t.TempDir()
	if err := Extract(context.Background(), bytes.NewReader(data[:3000]), "rom", dir, nil, nil); err == nil {
		t.Fatal("truncated archive accepted")
	}
	if _, err := os.Stat(filepath.Join(dir, "images/boot.img")); err == nil {
		t.Fatal("partial file left under its final name")
	}
}

func FuzzFlashAll(f *testing.F) {
	f.Add("flash_all.sh", abFlashAll)
	f.Add("flash_all_lock.bat", abFlashLock)
	f.Add("flash_all.sh", "fastboot $* getvar product 2>&1 | grep \"^product: *armani\"\nfastboot $* flash boot `dirname $0`/images/boot.img || exit 1\n")
	f.Fuzz(func(t *testing.T, name, src string) {
		s, err := ParseScript(name, src)
		if err != nil {
			if !errors.Is(err, failure.ErrInvalid) {
				t.Fatal(err)
			}
			return
		}
		for _, st := range s.Steps {
			if st.Op == "" || st.Line < 1 {
				t.Fatalf("bad step %+v", st)
			}
			if st.Op == OpLock && !s.Relocks {
				t.Fatal("lock step without Relocks")
			}
		}
	})
}
