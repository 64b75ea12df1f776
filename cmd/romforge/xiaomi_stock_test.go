package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/lp"
	"github.com/romforge/romforge/image/sparse"
)

// stockROM is a generated stock-style Xiaomi fastboot ROM folder.
type stockROM struct {
	Root string
	// Images maps each flashed partition (no slot suffix) to its image file.
	Images map[string]string
	// Slotted says the scripts flash the partition as NAME_ab (both slots).
	Slotted map[string]bool
}

// ownedByPhone are partitions a stock ROM never ships: calibration, radio NV, keys, logs and the
// user's data live there.
var ownedByPhone = map[string]bool{
	"userdata": true, "metadata": true, "persist": true, "modemst1": true, "modemst2": true, "fsg": true,
	"fsc": true, "ssd": true, "ddr": true, "gsort": true, "uefivarstore": true, "logdump": true,
	"rawdump": true, "minidump": true, "frp": true, "keystore": true, "secdata": true, "limits": true,
	"cdt": true, "msadp": true, "apdp": true, "cache": true,
}

// writeStockROM writes a stock-style Xiaomi fastboot ROM for d the way MiFlash packages ship it:
// images/ with one seeded random image per partition the ROM flashes (every physical catalog partition
// with a known size that the phone does not own, firmware included), and flash_all, flash_all_except_storage
// and flash_all_lock as .sh and .bat, each with the product check and the CURRENT_ANTI_VER anti-rollback
// check. flash_all erases userdata (and metadata on dynamic-partition phones); except_storage does not;
// lock relocks at the end.
func writeStockROM(t *testing.T, d *devices.Device, seed int64, anti int) stockROM {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	root := filepath.Join(t.TempDir(), fmt.Sprintf("%s_global_images_OS1.0.%d.0_20240101.0000.00_14.0_global", d.Codename, seed%100))
	if err := os.MkdirAll(filepath.Join(root, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := stockROM{Root: root, Images: map[string]string{}, Slotted: map[string]bool{}}
	var sh, bat []string
	for _, p := range d.Partitions {
		// super is written below as a real super image; ALIGN_TO_128K_* are the layout's padding.
		if p.Logical || p.Size <= 0 || ownedByPhone[p.Name] || strings.HasSuffix(p.Name, "bak") || p.Name == "super" || strings.HasPrefix(p.Name, "ALIGN_TO") {
			continue
		}
		// Firmware ships as .elf/.mbn/.bin in real ROMs; the name does not matter to the flash.
		ext := []string{".img", ".elf", ".mbn", ".bin"}[rng.Intn(4)]
		if p.Name == "boot" || p.Name == "dtbo" || strings.HasPrefix(p.Name, "vbmeta") {
			ext = ".img"
		}
		n := 1 + rng.Int63n(min(p.Size, 48<<10))
		b := make([]byte, n)
		rng.Read(b)
		file := p.Name + ext
		path := filepath.Join(root, "images", file)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		r.Images[p.Name] = path
		part := p.Name
		if d.AB && !p.NoSlot {
			part += "_ab"
			r.Slotted[p.Name] = true
		}
		sh = append(sh, fmt.Sprintf("fastboot $* flash %s `dirname $0`/images/%s || { echo \"Flash %s error\"; exit 1; }", part, file, p.Name))
		bat = append(bat, fmt.Sprintf(`fastboot %%* flash %s %%~dp0images\%s || @echo "Flash %s error" && exit /B 1`, part, file, p.Name))
	}
	if d.Dynamic && d.Super != nil {
		// super.img as MiFlash ROMs ship it: sparse, slot-a logical partitions filled, flashed whole.
		spec := lp.BuildSpec{DeviceSize: d.Super.Size, MetadataMaxSize: uint32(d.Super.MetadataSize), MetadataSlots: uint32(d.Super.MetadataSlots), VirtualAB: d.Super.VirtualAB}
		for _, g := range d.Super.Groups {
			spec.Groups = append(spec.Groups, lp.GroupSpec{Name: g.Name, MaximumSize: uint64(g.MaxSize)})
		}
		for _, p := range d.Partitions {
			if p.Logical {
				b := make([]byte, (1+rng.Intn(16))*4096)
				rng.Read(b)
				spec.Partitions = append(spec.Partitions, lp.PartitionSpec{Name: p.Name, Group: p.Group, Attributes: lp.AttrReadonly, Image: image.New(bytes.NewReader(b), int64(len(b)))})
			}
		}
		if d.AB {
			spec = spec.WithSlotSuffixes()
		}
		img, _, err := lp.Compose(spec)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(root, "images", "super.img")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := sparse.Write(context.Background(), f, img, sparse.WriteOptions{HolesDontCare: true}); err != nil {
			t.Fatal(err)
		}
		f.Close()
		r.Images["super"] = path
		sh = append(sh, "fastboot $* flash super `dirname $0`/images/super.img || { echo \"Flash super error\"; exit 1; }")
		bat = append(bat, `fastboot %* flash super %~dp0images\super.img || @echo "Flash super error" && exit /B 1`)
	}
	product := d.Products[0]
	shHead := fmt.Sprintf(`#!/bin/sh
fastboot $* getvar product 2>&1 | grep "^product: *%s"
if [ $? -ne 0  ] ; then echo "Missmatching image and device"; exit 1; fi
CURRENT_ANTI_VER=%d
ver=`+"`"+`fastboot $* getvar anti 2>&1 | grep anti: | awk '{print $2}'`+"`"+`
if [ -z "$ver" ]; then ver=0; fi
if [ $ver -gt $CURRENT_ANTI_VER ]; then echo "Current device antirollback version is greater than this pakcage"; exit 1; fi
`, product, anti)
	batHead := fmt.Sprintf(`fastboot %%* getvar product 2>&1 | findstr /r /c:"^product: *%s" || echo Missmatching image and device
fastboot %%* getvar product 2>&1 | findstr /r /c:"^product: *%s" || exit /B 1
set CURRENT_ANTI_VER=%d
for /f "tokens=2 delims=: " %%%%i in ('fastboot %%* getvar anti 2^>^&1 ^| findstr /r /c:"anti:"') do (set version=%%%%i)
if [%%version%%] EQU [] set version=0
if %%version%% GTR %%CURRENT_ANTI_VER%% ( echo Current device antirollback version is greater than this pakcage & exit /B 1 )
`, product, product, anti)
	var shWipe, batWipe, shTail, batTail []string
	if d.Dynamic {
		shWipe = append(shWipe, "fastboot $* erase metadata")
		batWipe = append(batWipe, "fastboot %* erase metadata")
	}
	shWipe = append(shWipe, "fastboot $* erase userdata")
	batWipe = append(batWipe, "fastboot %* erase userdata")
	if d.AB {
		shTail = append(shTail, "fastboot $* set_active a")
		batTail = append(batTail, "fastboot %* set_active a")
	}
	write := func(name string, lines []string, crlf bool) {
		text := strings.Join(lines, "\n") + "\n"
		if crlf {
			text = strings.ReplaceAll(text, "\n", "\r\n")
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cat := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	write("flash_all.sh", cat([]string{shHead}, sh, shWipe, shTail, []string{"fastboot $* reboot"}), false)
	write("flash_all_except_storage.sh", cat([]string{shHead}, sh, shTail, []string{"fastboot $* reboot"}), false)
	write("flash_all_lock.sh", cat([]string{shHead}, sh, shWipe, shTail, []string{"fastboot $* oem lock", "fastboot $* reboot"}), false)
	write("flash_all.bat", cat([]string{batHead}, bat, batWipe, batTail, []string{"fastboot %* reboot"}), true)
	write("flash_all_except_storage.bat", cat([]string{batHead}, bat, batTail, []string{"fastboot %* reboot"}), true)
	write("flash_all_lock.bat", cat([]string{batHead}, bat, batWipe, batTail, []string{"fastboot %* oem lock", "fastboot %* reboot"}), true)
	return r
}
