package pipeline

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
				s, _ := image.FileSHA256(context.Background(), p)
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
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
		t.Fatalf("temporary bundle left: %v", ents)
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
// patched and rebuilt as EROFS, vbmeta gets the disable flags, and two builds are byte-identical. By
// default the logical partitions are packed into a sparse super.img with the catalog's geometry, which
// the real simg2img, lpdump and lpunpack read, and whose system_a passes fsck.erofs; with --super none
// the flash plan marks the logical partitions for fastbootd instead.
func TestABDynamicBuild(t *testing.T) {
	rom := filepath.Join(t.TempDir(), "alioth-ota.zip")
	f, _ := os.Create(rom)
	if err := sample.ABROM(context.Background(), f, "alioth"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dev := device(t, "alioth")
	var sums [2]string
	for i := range sums {
		out := filepath.Join(t.TempDir(), "bundle")
		res, err := Run(context.Background(), Options{Device: dev, Input: rom, Sets: hardened(t), Out: out})
		if err != nil {
			t.Fatal(err)
		}
		if res.Before.Clean() || !res.After.Clean() {
			t.Fatalf("audits %d → %v", len(res.Before.Findings), res.After.Findings)
		}
		m := res.Manifest
		var ops []string
		for _, s := range m.Steps {
			if s.Logical {
				t.Fatalf("step %+v is logical although super.img holds the logical partitions", s)
			}
			ops = append(ops, strings.TrimSpace(s.Op+" "+s.Partition+" "+s.Slot))
		}
		if got := strings.Join(ops, ", "); got != "flash boot, flash vbmeta, flash super a, set_active  a, reboot" {
			t.Fatalf("flash plan: %s", got)
		}
		if m.Super == nil || m.Super.Slot != "a" || m.Super.DeviceSize != dev.Super.Size || len(m.Super.Partitions) == 0 {
			t.Fatalf("manifest super: %+v", m.Super)
		}
		if _, err := os.Stat(filepath.Join(out, "images/system.img")); err == nil {
			t.Fatal("images/system.img left beside super.img")
		}
		vb, _ := os.ReadFile(filepath.Join(out, "images/vbmeta.img"))
		if len(vb) < 124 || vb[123]&3 != 3 {
			t.Fatal("vbmeta flags not set")
		}
		sums[i], _ = image.FileSHA256(context.Background(), filepath.Join(out, "manifest.json"))
		if i == 0 {
			checkSuperWithAOSPTools(t, out, m)
		}
	}
	if sums[0] != sums[1] {
		t.Fatal("A/B build not reproducible")
	}

	out := filepath.Join(t.TempDir(), "bundle")
	res, err := Run(context.Background(), Options{Device: dev, Input: rom, Sets: hardened(t), Out: out, Super: "none"})
	if err != nil {
		t.Fatal(err)
	}
	logical := map[string]bool{}
	for _, s := range res.Manifest.Steps {
		if s.Logical {
			logical[s.Partition] = true
		}
	}
	if !logical["system"] || !logical["vendor"] || logical["boot"] || res.Manifest.Super != nil {
		t.Fatalf("--super none: logical flags %v, super %+v", logical, res.Manifest.Super)
	}
	validators.Run(t, validators.Tool(t, "fsck.erofs"), filepath.Join(out, "images/system.img"))
}

// checkSuperWithAOSPTools expands the bundle's super.img with simg2img, checks its layout with lpdump
// (geometry, groups, partitions) and unpacks it with lpunpack: every partition equals the manifest's
// record, and system_a passes fsck.erofs.
func checkSuperWithAOSPTools(t *testing.T, out string, m *bundle.Manifest) {
	simg2img := validators.Tool(t, "simg2img")
	lpdump := validators.Tool(t, "lpdump")
	lpunpack := validators.Tool(t, "lpunpack")
	dir := t.TempDir()
	raw := filepath.Join(dir, "super.raw")
	validators.Run(t, simg2img, filepath.Join(out, "images/super.img"), raw)
	if st, err := os.Stat(raw); err != nil || st.Size() != m.Super.DeviceSize {
		t.Fatalf("expanded super: %v, want %d bytes", err, m.Super.DeviceSize)
	}
	dump := validators.Run(t, lpdump, raw)
	for _, want := range []string{"Metadata slot count: 3", "Name: system_a", "Name: system_b", "Group: qti_dynamic_partitions_a", "Group: qti_dynamic_partitions_b", "Header flags: virtual_ab_device", "Size: 9126805504"} {
		if !strings.Contains(dump, want) {
			t.Fatalf("lpdump lacks %q:\n%s", want, dump)
		}
	}
	validators.Run(t, lpunpack, "--slot=0", raw, dir)
	for _, p := range m.Super.Partitions {
		if got, _ := image.FileSHA256(context.Background(), filepath.Join(dir, p.Partition+".img")); got != p.SHA256 {
			t.Errorf("lpunpack %s: sha256 %s, manifest %s", p.Partition, got, p.SHA256)
		}
	}
	validators.Run(t, validators.Tool(t, "fsck.erofs"), filepath.Join(dir, "system_a.img"))
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
	// The ramdisk is a partition of the patch target ("boot-ramdisk"): the sets' init steps edit it.
	for _, st := range res.Report.Steps {
		for _, c := range st.Changes {
			if c.Path == "boot-ramdisk/init.miui.rc" {
				found = true
			}
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
	// avbtool finds partition images beside vbmeta by name: put the logical ones there from super.
	images := filepath.Join(out, "images")
	dir := t.TempDir()
	validators.Run(t, validators.Tool(t, "simg2img"), filepath.Join(images, "super.img"), filepath.Join(dir, "super.raw"))
	validators.Run(t, validators.Tool(t, "lpunpack"), "--slot=0", filepath.Join(dir, "super.raw"), dir)
	for _, name := range []string{"vbmeta", "boot"} {
		b, _ := os.ReadFile(filepath.Join(images, name+".img"))
		os.WriteFile(filepath.Join(dir, name+".img"), b, 0o644)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), "_a.img"); ok {
			os.Rename(filepath.Join(dir, e.Name()), filepath.Join(dir, n+".img"))
		}
	}
	validators.Run(t, avbtool, "verify_image", "--image", filepath.Join(dir, "vbmeta.img"), "--key", key)
	info := validators.Run(t, avbtool, "info_image", "--image", filepath.Join(images, "vbmeta.img"))
	if !strings.Contains(info, "Algorithm:                SHA256_RSA2048") || !strings.Contains(info, "Partition Name:        system") {
		t.Fatalf("vbmeta:\n%s", info)
	}
}

// TestSuperTooSmall: logical partitions that do not fit the catalog's super are refused as invalid
// input, leaving no bundle behind.
func TestSuperTooSmall(t *testing.T) {
	rom := filepath.Join(t.TempDir(), "alioth-ota.zip")
	f, _ := os.Create(rom)
	if err := sample.ABROM(context.Background(), f, "alioth"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d := *device(t, "alioth")
	sup := *d.Super
	sup.Size = 2 << 20 // metadata and not much else
	sup.Groups = []devices.Group{{Name: "qti_dynamic_partitions", MaxSize: 4096}}
	d.Super = &sup
	out := filepath.Join(t.TempDir(), "bundle")
	_, err := Run(context.Background(), Options{Device: &d, Input: rom, Sets: hardened(t), Out: out})
	if !errors.Is(err, failure.ErrInvalid) || errors.Is(err, failure.ErrUsage) || !strings.Contains(err.Error(), "do not fit") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("partial bundle left")
	}
}
