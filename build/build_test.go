package build

import (
	"archive/zip"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/android/apk"
	"github.com/romforge/romforge/bundle"
	"github.com/romforge/romforge/demo/sample"
	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/fs/fsimage"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/bootimg"
	"github.com/romforge/romforge/image/cpio"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
	"github.com/romforge/romforge/patches"
)

func device(t *testing.T, name string) *devices.Device {
	cat, _ := devices.Builtin()
	d, err := cat.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func armaniROM(t *testing.T, dev string) string {
	p := filepath.Join(t.TempDir(), "lineage-14.1-armani.zip")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := sample.ArmaniROM(context.Background(), f, sample.Options{SystemSize: 32 << 20, Device: dev}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

func hardened(t *testing.T) []*patches.Set {
	s, err := patches.Load("xiaomi-hardened")
	if err != nil {
		t.Fatal(err)
	}
	return []*patches.Set{s}
}

func TestArmaniBuildReproducibleAndClean(t *testing.T) {
	rom := armaniROM(t, "armani")
	var sums [2]map[string]string
	var outs [2]string
	for i := range sums {
		out := filepath.Join(t.TempDir(), "bundle")
		res, err := Run(context.Background(), Options{Device: device(t, "armani"), Input: rom, Sets: hardened(t), Out: out, Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Before.Clean() {
			t.Fatal("the sample ROM audited clean before patching")
		}
		if !res.After.Clean() {
			t.Fatalf("after patching: %v", res.After.Findings)
		}
		sums[i] = map[string]string{}
		filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				s, _ := fileSHA256(p)
				rel, _ := filepath.Rel(out, p)
				sums[i][rel] = s
			}
			return nil
		})
		outs[i] = out
	}
	for _, want := range []string{"manifest.json", "flash.sh", "flash.bat", "images/system.img", "images/boot.img", "romforge-armani-recovery.zip"} {
		if sums[0][want] == "" {
			t.Errorf("bundle lacks %s (has %v)", want, sums[0])
		}
	}
	for k, v := range sums[0] {
		if sums[1][k] != v {
			t.Errorf("%s differs between two builds: not reproducible", k)
		}
	}
	m, err := bundle.Read(outs[0])
	if err != nil {
		t.Fatal(err)
	}
	var sys bundle.Image
	for _, im := range m.Images {
		if im.Partition == "system" {
			sys = im
		}
	}
	if !sys.Modified || sys.Format != "ext4" || sys.Size != 32<<20 {
		t.Fatalf("system image record %+v", sys)
	}
	img := filepath.Join(outs[0], "images/system.img")
	validators.Run(t, validators.Tool(t, "e2fsck"), "-fn", img)
	if os.Geteuid() == 0 {
		mnt := t.TempDir()
		if out, err := exec.Command("mount", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
			t.Logf("mount unavailable: %v %s", err, out)
		} else {
			defer exec.Command("umount", mnt).Run()
			if _, err := os.Stat(filepath.Join(mnt, "app/XMSF")); err == nil {
				t.Fatal("mounted system still has XMSF")
			}
			hosts, _ := os.ReadFile(filepath.Join(mnt, "etc/hosts"))
			if !strings.Contains(string(hosts), "0.0.0.0 api.xmpush.xiaomi.com") {
				t.Fatalf("mounted hosts:\n%s", hosts)
			}
		}
	}
}

func TestBuildRefusals(t *testing.T) {
	// A ROM for another device: refused, nothing left behind.
	rom := armaniROM(t, "lavender")
	out := filepath.Join(t.TempDir(), "bundle")
	_, err := Run(context.Background(), Options{Device: device(t, "armani"), Input: rom, Sets: hardened(t), Out: out})
	if !errors.Is(err, failure.ErrRefused) {
		t.Fatalf("wrong device: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("partial bundle left")
	}
	if _, err := os.Stat(out + ".building"); !os.IsNotExist(err) {
		t.Fatal("temporary bundle left")
	}
	// A truncated zip and a file that is no ROM: invalid input.
	good := armaniROM(t, "armani")
	b, _ := os.ReadFile(good)
	trunc := filepath.Join(t.TempDir(), "trunc.zip")
	os.WriteFile(trunc, b[:len(b)/2], 0o644)
	junk := filepath.Join(t.TempDir(), "junk.bin")
	os.WriteFile(junk, []byte("not a rom"), 0o644)
	for _, in := range []string{trunc, junk} {
		_, err := Run(context.Background(), Options{Device: device(t, "armani"), Input: in, Sets: hardened(t), Out: filepath.Join(t.TempDir(), "b")})
		if !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: %v", filepath.Base(in), err)
		}
	}
}

// TestXiaomiFastbootROMBuild builds from the Xiaomi-style fastboot ROM fixture (tgz with images/ and
// flash_all.sh): its system image is patched and rebuilt, the anti-rollback version and products carried.
func TestXiaomiFastbootROMBuild(t *testing.T) {
	fx := validators.Fixtures(t)
	roms, _ := filepath.Glob(filepath.Join(fx, "fastboot", "armani_images_*.tgz"))
	if len(roms) != 1 {
		t.Fatalf("fixture tgz: %v", roms)
	}
	out := filepath.Join(t.TempDir(), "bundle")
	res, err := Run(context.Background(), Options{Device: device(t, "armani"), Input: roms[0], Sets: hardened(t), Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if res.Before.Clean() || !res.After.Clean() {
		t.Fatalf("audits: before %d, after %v", len(res.Before.Findings), res.After.Findings)
	}
	if res.Manifest.Source.Kind != "xiaomi-fastboot" {
		t.Fatalf("kind %s", res.Manifest.Source.Kind)
	}
	validators.Run(t, validators.Tool(t, "e2fsck"), "-fn", filepath.Join(out, "images/system.img"))
}

// TestFileOTABuild builds system.img from a CyanogenMod-style file OTA (system/ files + updater-script).
func TestFileOTABuild(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cm-11-armani.zip")
	f, _ := os.Create(p)
	zw := zip.NewWriter(f)
	add := func(name, body string) {
		w, _ := zw.Create(name)
		w.Write([]byte(body))
	}
	add("system/build.prop", "ro.product.device=armani\nro.xiaomi.cloud.endpoint=https://i.mi.com\n")
	add("system/etc/hosts", "127.0.0.1 localhost\n")
	add("system/bin/toolbox", "\x7fELF")
	add("system/app/XMSF.apk", string(apk.Build("com.xiaomi.xmsf", "", nil)))
	add("boot.img", string(sample.BootImage()))
	add("META-INF/com/google/android/update-binary", "#!/sbin/sh\n")
	add("META-INF/com/google/android/updater-script", `assert(getprop("ro.product.device") == "armani" || getprop("ro.build.product") == "armani");
package_extract_dir("system", "/system");
symlink("toolbox", "/system/bin/ls");
set_metadata_recursive("/system", "uid", 0, "gid", 0, "dmode", 0755, "fmode", 0644, "capabilities", 0x0, "selabel", "u:object_r:system_file:s0");
set_metadata("/system/bin/toolbox", "uid", 0, "gid", 2000, "mode", 0755, "capabilities", 0x0, "selabel", "u:object_r:toolbox_exec:s0");
`)
	zw.Close()
	f.Close()
	out := filepath.Join(t.TempDir(), "bundle")
	res, err := Run(context.Background(), Options{Device: device(t, "armani"), Input: p, Sets: hardened(t), Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if !res.After.Clean() || res.Before.Clean() {
		t.Fatalf("audits %d → %v", len(res.Before.Findings), res.After.Findings)
	}
	img, err := fsimage.Open(filepath.Join(out, "images/system.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	m, err := img.Meta("bin/toolbox")
	if err != nil || m.GID != 2000 || m.Mode.Perm() != 0o755 || m.SELinux() != "u:object_r:toolbox_exec:s0" {
		t.Fatalf("toolbox meta %+v %v", m, err)
	}
	if l, err := img.Meta("bin/ls"); err != nil || l.Target != "toolbox" {
		t.Fatalf("symlink %+v %v", l, err)
	}
	validators.Run(t, validators.Tool(t, "e2fsck"), "-fn", filepath.Join(out, "images/system.img"))
}

// TestABDynamicBuild builds from an A/B OTA zip (payload.bin with EROFS logical partitions): system is
// patched and rebuilt as EROFS (fsck.erofs accepts it), vbmeta gets the disable flags, the flash plan
// marks the logical partitions, and two builds are byte-identical.
func TestABDynamicBuild(t *testing.T) {
	rom := filepath.Join(t.TempDir(), "alioth-ota.zip")
	f, _ := os.Create(rom)
	if err := sample.ABROM(context.Background(), f, "alioth"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var sums [2]string
	for i := range sums {
		out := filepath.Join(t.TempDir(), "bundle")
		res, err := Run(context.Background(), Options{Device: device(t, "alioth"), Input: rom, Sets: hardened(t), Out: out})
		if err != nil {
			t.Fatal(err)
		}
		if res.Before.Clean() || !res.After.Clean() {
			t.Fatalf("audits %d → %v", len(res.Before.Findings), res.After.Findings)
		}
		logical := map[string]bool{}
		for _, s := range res.Manifest.Steps {
			if s.Logical {
				logical[s.Partition] = true
			}
		}
		if !logical["system"] || !logical["vendor"] || logical["boot"] {
			t.Fatalf("logical flags %v", logical)
		}
		validators.Run(t, validators.Tool(t, "fsck.erofs"), filepath.Join(out, "images/system.img"))
		vb, _ := os.ReadFile(filepath.Join(out, "images/vbmeta.img"))
		if len(vb) < 124 || vb[123]&3 != 3 {
			t.Fatal("vbmeta flags not set")
		}
		sums[i], _ = fileSHA256(filepath.Join(out, "manifest.json"))
	}
	if sums[0] != sums[1] {
		t.Fatal("A/B build not reproducible")
	}
}

// TestRamdiskInitEdited: the boot image's ramdisk init scripts get the sets' init steps (mqsasd disabled,
// the cloud helper removed, its start commented out); the rest of the ramdisk is unchanged.
func TestRamdiskInitEdited(t *testing.T) {
	rom := armaniROM(t, "armani")
	out := filepath.Join(t.TempDir(), "bundle")
	res, err := Run(context.Background(), Options{Device: device(t, "armani"), Input: rom, Sets: hardened(t), Out: out})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, st := range res.Report.Steps {
		if st.Set == "ramdisk" && len(st.Changes) == 1 && st.Changes[0].Path == "ramdisk/init.miui.rc" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no ramdisk change reported: %+v", res.Report.Steps)
	}
	f, _ := image.OpenFile(filepath.Join(out, "images/boot.img"))
	defer f.Close()
	im, err := bootimg.Parse(f, f.Size())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := im.Unpack(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "ramdisk"))
	rd, err := cpio.ParseRamdisk(b)
	if err != nil || rd.Compression == "" {
		t.Fatalf("ramdisk: %v", err)
	}
	rc, _ := rd.ReadFile("init.miui.rc")
	if !strings.Contains(string(rc), "service mqsasd /system/bin/mqsasd\n    disabled\n") || strings.Contains(string(rc), "service cloudsync") || !strings.Contains(string(rc), "# romforge: start cloudsync") {
		t.Fatalf("init.miui.rc:\n%s", rc)
	}
	if initrc, _ := rd.ReadFile("init.rc"); !strings.Contains(string(initrc), "service ueventd") {
		t.Fatal("init.rc changed")
	}
	if r, _ := res.Manifest.Images[0], 0; r.Partition == "boot" && !r.Modified {
		t.Fatal("boot not marked modified")
	}
}

// TestVerityResign: --verity resign adds a hashtree footer to the rebuilt system image and signs a new
// vbmeta with the owner's key; the real avbtool verifies the result.
func TestVerityResign(t *testing.T) {
	avbtool := validators.Tool(t, "avbtool")
	shared, err := validators.SharedDir()
	if err != nil {
		t.Skip(err)
	}
	key := filepath.Join(shared, "keys", "testkey_rsa2048.pem")
	rom := filepath.Join(t.TempDir(), "alioth-ota.zip")
	f, _ := os.Create(rom)
	if err := sample.ABROM(context.Background(), f, "alioth"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(t.TempDir(), "bundle")
	if _, err := Run(context.Background(), Options{Device: device(t, "alioth"), Input: rom, Sets: hardened(t), Out: out, Verity: "resign", Key: key}); err != nil {
		t.Fatal(err)
	}
	images := filepath.Join(out, "images")
	validators.Run(t, avbtool, "verify_image", "--image", filepath.Join(images, "vbmeta.img"), "--key", key)
	info := validators.Run(t, avbtool, "info_image", "--image", filepath.Join(images, "vbmeta.img"))
	if !strings.Contains(info, "Algorithm:                SHA256_RSA2048") || !strings.Contains(info, "Partition Name:        system") {
		t.Fatalf("vbmeta:\n%s", info)
	}
}
