package pipeline

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/romforge/romforge/bundle"
	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/fs/erofs"
	"github.com/romforge/romforge/fs/ext4"
	"github.com/romforge/romforge/fs/fsimage"
	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/avb"
	"github.com/romforge/romforge/image/bootimg"
	"github.com/romforge/romforge/image/cpio"
	"github.com/romforge/romforge/image/lp"
	"github.com/romforge/romforge/image/payload"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/internal/validators"
	"github.com/romforge/romforge/patches"
	"github.com/romforge/romforge/patches/audit"
	"github.com/romforge/romforge/patches/cloudgen"
	"github.com/romforge/romforge/patches/harden"
)

// genBoot is a boot image (v0) whose gzip ramdisk is the generated ramdisk tree.
func genBoot(t *testing.T, rd tree.Tree) []byte {
	t.Helper()
	a := cpio.New()
	var names []string
	tree.Walk(rd, func(name string, m tree.Meta) error {
		if name != "." {
			names = append(names, name)
		}
		return nil
	})
	sort.Slice(names, func(i, j int) bool {
		return strings.Count(names[i], "/") < strings.Count(names[j], "/") || strings.Count(names[i], "/") == strings.Count(names[j], "/") && names[i] < names[j]
	})
	for _, n := range names {
		m, _ := rd.Meta(n)
		if m.Mode.IsDir() {
			a.AddDir(n, uint32(m.Mode.Perm()), 0, 0)
			continue
		}
		f, _ := rd.Open(n)
		b, _ := io.ReadAll(f)
		f.Close()
		a.AddFile(n, b, uint32(m.Mode.Perm()), 0, 0)
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(a.Bytes())
	zw.Close()
	kernel := bytes.Repeat([]byte("KERNEL"), 1000)
	args := bootimg.DefaultArgs()
	args.PageSize = 2048
	args.Kernel = image.New(bytes.NewReader(kernel), int64(len(kernel)))
	args.Ramdisk = image.New(bytes.NewReader(gz.Bytes()), int64(gz.Len()))
	out, err := bootimg.Build(&args)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	b, err := out.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func erofsBytes(t *testing.T, tr tree.Tree, name string) []byte {
	t.Helper()
	var buf memFile
	res, err := erofs.Write(context.Background(), &buf, tr, erofs.WriteOptions{Compression: "lz4hc", Timestamp: cloudgen.Epoch, VolumeName: name})
	if err != nil {
		t.Fatal(err)
	}
	return buf.b[:res.Size]
}

var logicalParts = []string{"system", "system_ext", "product", "vendor", "odm"}

// genFileOTA is an armani-style file OTA: system/ files, boot.img and an updater-script.
func genFileOTA(t *testing.T, rom *cloudgen.ROM) string {
	p := filepath.Join(t.TempDir(), "cm-armani.zip")
	f, _ := os.Create(p)
	zw := zip.NewWriter(f)
	var meta strings.Builder
	tree.Walk(rom.Parts["system"], func(name string, m tree.Meta) error {
		if !m.Mode.IsRegular() {
			return nil
		}
		b, _ := rom.Parts["system"].ReadFile(name)
		w, _ := zw.Create("system/" + name)
		w.Write(b)
		if m.Mode.Perm() != 0o644 {
			fmt.Fprintf(&meta, "set_metadata(\"/system/%s\", \"uid\", 0, \"gid\", 0, \"mode\", 0%o, \"capabilities\", 0x0, \"selabel\", \"u:object_r:system_file:s0\");\n", name, m.Mode.Perm())
		}
		return nil
	})
	w, _ := zw.Create("boot.img")
	w.Write(genBoot(t, rom.Parts["boot-ramdisk"]))
	w, _ = zw.Create("META-INF/com/google/android/update-binary")
	w.Write([]byte("#!/sbin/sh\n"))
	w, _ = zw.Create("META-INF/com/google/android/updater-script")
	w.Write([]byte(`assert(getprop("ro.product.device") == "armani" || getprop("ro.build.product") == "armani");
package_extract_dir("system", "/system");
set_metadata_recursive("/system", "uid", 0, "gid", 0, "dmode", 0755, "fmode", 0644, "capabilities", 0x0, "selabel", "u:object_r:system_file:s0");
` + meta.String()))
	zw.Close()
	f.Close()
	return p
}

// genBlockOTA is an armani-style block OTA (system.new.dat.br, boot.img).
func genBlockOTA(t *testing.T, rom *cloudgen.ROM) string {
	ctx := context.Background()
	size := int64(32 << 20)
	sys := filepath.Join(t.TempDir(), "system.img")
	f, _ := os.Create(sys)
	if _, err := ext4.Write(ctx, f, rom.Parts["system"], ext4.WriteOptions{Size: size, Profile: "legacy", Timestamp: cloudgen.Epoch, MountPoint: "/system", VolumeName: "system"}); err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	boot := genBoot(t, rom.Parts["boot-ramdisk"])
	p := filepath.Join(t.TempDir(), "lineage-armani.zip")
	out, _ := os.Create(p)
	defer out.Close()
	err := bundle.RecoveryZip(ctx, out, map[string]image.Image{"system": image.New(f, size)}, map[string]image.Image{"boot": image.New(bytes.NewReader(boot), int64(len(boot)))},
		bundle.RecoveryOptions{Devices: []string{"armani"}, BlockPrefix: "/dev/block/platform/msm_sdcc.1/by-name", UpdateBinary: []byte("#!/sbin/sh\n"), Time: cloudgen.Epoch})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// genPayloadROM is an A/B OTA whose payload holds EROFS logical partitions.
func genPayloadROM(t *testing.T, rom *cloudgen.ROM) string {
	ctx := context.Background()
	boot := genBoot(t, rom.Parts["boot-ramdisk"])
	vb, _ := avb.Sign(avb.SignOptions{Algorithm: avb.AlgorithmNone, PaddingSize: 4096})
	wps := []payload.WritePartition{{Name: "boot", Image: image.New(bytes.NewReader(boot), int64(len(boot)))}, {Name: "vbmeta", Image: image.New(bytes.NewReader(vb), int64(len(vb)))}}
	for _, n := range logicalParts {
		b := erofsBytes(t, rom.Parts[n], n)
		wps = append(wps, payload.WritePartition{Name: n, Image: image.New(bytes.NewReader(b), int64(len(b))), Compression: payload.OpReplaceXZ, FilesystemType: "erofs"})
	}
	var pl bytes.Buffer
	err := payload.Write(ctx, &pl, wps, payload.WriteOptions{OpSize: 1 << 20, MaxTimestamp: cloudgen.Epoch.Unix(), TempDir: t.TempDir(),
		Dynamic: &payload.DynamicPartitionMetadata{Groups: []payload.DynamicPartitionGroup{{Name: "qti_dynamic_partitions", Size: 9122611200, Partitions: logicalParts}}, SnapshotEnabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "alioth-ota.zip")
	f, _ := os.Create(p)
	zw := zip.NewWriter(f)
	hw, _ := zw.CreateHeader(&zip.FileHeader{Name: "payload.bin", Method: zip.Store})
	hw.Write(pl.Bytes())
	w, _ := zw.Create("payload_properties.txt")
	fmt.Fprintf(w, "FILE_SIZE=%d\n", pl.Len())
	hw, _ = zw.CreateHeader(&zip.FileHeader{Name: "META-INF/com/android/metadata", Method: zip.Store})
	hw.Write([]byte("ota-type=AB\npre-device=alioth\npost-timestamp=1700000000\n"))
	zw.Close()
	f.Close()
	return p
}

// genFastbootROM is a Xiaomi fastboot ROM folder with a sparse super.img (slot-a EROFS partitions).
func genFastbootROM(t *testing.T, rom *cloudgen.ROM, d *devices.Device) string {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), d.Codename+"_images_OS1.0.5.0.UKHCNXM_20240101.0000.00_14.0_cn")
	imgs := filepath.Join(root, "images")
	os.MkdirAll(imgs, 0o755)
	spec := lp.BuildSpec{DeviceSize: d.Super.Size, MetadataMaxSize: uint32(d.Super.MetadataSize), MetadataSlots: uint32(d.Super.MetadataSlots), VirtualAB: d.Super.VirtualAB,
		Groups: []lp.GroupSpec{{Name: d.Super.Groups[0].Name, MaximumSize: uint64(d.Super.Groups[0].MaxSize)}}}
	for _, n := range logicalParts {
		b := erofsBytes(t, rom.Parts[n], n)
		spec.Partitions = append(spec.Partitions, lp.PartitionSpec{Name: n, Group: d.Super.Groups[0].Name, Attributes: lp.AttrReadonly, Image: image.New(bytes.NewReader(b), int64(len(b)))})
	}
	img, _, err := lp.Compose(spec.WithSlotSuffixes())
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Create(filepath.Join(imgs, "super.img"))
	if err := sparse.Write(ctx, f, img, sparse.WriteOptions{HolesDontCare: true}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	vb, _ := avb.Sign(avb.SignOptions{Algorithm: avb.AlgorithmNone, PaddingSize: 4096})
	os.WriteFile(filepath.Join(imgs, "vbmeta.img"), vb, 0o644)
	os.WriteFile(filepath.Join(imgs, "boot.img"), genBoot(t, rom.Parts["boot-ramdisk"]), 0o644)
	script := "fastboot $* getvar product 2>&1 | grep \"^product: *" + d.Codename + "\"\nif [ $? -ne 0 ] ; then echo \"Missmatching image and device\"; exit 1; fi\n" +
		"fastboot $* flash boot_ab `dirname $0`/images/boot.img || exit 1\nfastboot $* flash vbmeta_ab `dirname $0`/images/vbmeta.img || exit 1\n" +
		"fastboot $* flash super `dirname $0`/images/super.img || exit 1\nfastboot $* set_active a || exit 1\nfastboot $* reboot || exit 1\n"
	os.WriteFile(filepath.Join(root, "flash_all.sh"), []byte(script), 0o755)
	return root
}

// builtTrees opens every filesystem and ramdisk of a bundle: plain images, or the logical partitions of
// its super.img (sparse), and the boot image's ramdisk. The image paths are returned for fsck.
func builtTrees(t *testing.T, out string) (map[string]tree.Tree, map[string]string) {
	t.Helper()
	trees := map[string]tree.Tree{}
	files := map[string]string{}
	ents, _ := os.ReadDir(filepath.Join(out, "images"))
	for _, e := range ents {
		p := filepath.Join(out, "images", e.Name())
		name := strings.TrimSuffix(e.Name(), ".img")
		switch {
		case name == "super":
			simg, c, err := sparse.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			s, err := lp.NewReader(simg, simg.Size())
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range logicalParts {
				part, err := s.Partition(0, n+"_a")
				if err != nil {
					t.Fatalf("super: %s_a: %v", n, err)
				}
				b, _ := io.ReadAll(image.Reader(part))
				lpath := filepath.Join(t.TempDir(), n+".img")
				os.WriteFile(lpath, b, 0o644)
				img, err := fsimage.Open(lpath)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { img.Close() })
				trees[n], files[n] = img, lpath
			}
		case isBootImage(name):
			f, _ := image.OpenFile(p)
			rds, _, err := patches.ReadBootRamdisks(f, f.Size(), name)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, rd := range rds {
				trees[rd.Name] = rd.Tree
			}
		default:
			img, err := fsimage.Open(p)
			if err != nil {
				continue // raw images (vbmeta)
			}
			t.Cleanup(func() { img.Close() })
			trees[name], files[name] = img, p
		}
	}
	return trees, files
}

func readTree(tr tree.Tree, rel string) ([]byte, error) {
	f, err := tr.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// checkBuild is the property of every build: nothing left, the built images audit clean (from scratch),
// every decoy byte-identical, every planted component gone, every filesystem passes the real fsck.
func checkBuild(t *testing.T, rom *cloudgen.ROM, res *Result, out string, parts []string, sets []*patches.Set) {
	t.Helper()
	if res.Hardening == nil || !res.Hardening.Clean() {
		t.Fatalf("seed %d: left %v", rom.Seed, res.Hardening)
	}
	if res.Before.Clean() {
		t.Fatalf("seed %d: the input audited clean", rom.Seed)
	}
	trees, files := builtTrees(t, out)
	for _, p := range parts {
		if trees[p] == nil {
			t.Fatalf("seed %d: %s missing from the bundle", rom.Seed, p)
		}
	}
	got, err := audit.Scan(context.Background(), trees, audit.RulesFrom(sets...), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, left := harden.Judge(got.Findings, sets, patches.NewTarget(trees)); len(left) > 0 {
		t.Fatalf("seed %d: the built images audit dirty: %v", rom.Seed, left)
	}
	in := map[string]bool{}
	for _, p := range parts {
		in[p] = true
	}
	for _, p := range rom.DecoyFiles {
		part, rel, _ := strings.Cut(p, "/")
		if !in[part] {
			continue
		}
		want, _ := rom.Parts[part].ReadFile(rel)
		b, err := readTree(trees[part], rel)
		if err != nil || !bytes.Equal(b, want) {
			t.Fatalf("seed %d: decoy %s changed (%v)", rom.Seed, p, err)
		}
	}
	for f, lines := range rom.DecoyProps {
		part, rel, _ := strings.Cut(f, "/")
		if !in[part] {
			continue
		}
		b, _ := readTree(trees[part], rel)
		for _, l := range lines {
			if !bytes.Contains(b, []byte(l+"\n")) {
				t.Fatalf("seed %d: decoy property %q lost from %s", rom.Seed, l, f)
			}
		}
	}
	for _, p := range rom.Planted {
		part, rel, _ := strings.Cut(p.Path, "/")
		if !in[part] || p.Kind == "prop" || p.Kind == "config" {
			continue
		}
		if _, err := trees[part].Meta(rel); err == nil {
			t.Fatalf("seed %d: planted %s %s still in the built %s", rom.Seed, p.Kind, p.Path, part)
		}
	}
	for name, f := range files {
		img := trees[name].(*fsimage.Image)
		tool, args := "e2fsck", []string{"-fn", f}
		if img.Kind == "erofs" {
			tool, args = "fsck.erofs", []string{f}
		}
		if !validators.Have(tool) {
			t.Logf("%s not installed: %s not checked by it (run scripts/install-validators.sh)", tool, name)
			continue
		}
		validators.Run(t, tool, args...)
	}
}

func TestHardenedBuildsOfGeneratedROMs(t *testing.T) {
	sets := hardened(t)
	seeds := []uint64{11, 12, 13}
	if testing.Short() {
		seeds = seeds[:1]
	}
	kinds := []struct {
		name   string
		device string
		parts  []string
		make   func(t *testing.T, rom *cloudgen.ROM, d *devices.Device) string
	}{
		{"file-ota", "armani", []string{"system", "boot-ramdisk"}, func(t *testing.T, r *cloudgen.ROM, _ *devices.Device) string { return genFileOTA(t, r) }},
		{"block-ota", "armani", []string{"system", "boot-ramdisk"}, func(t *testing.T, r *cloudgen.ROM, _ *devices.Device) string { return genBlockOTA(t, r) }},
		{"payload-erofs-super", "alioth", append([]string{"boot-ramdisk"}, logicalParts...), func(t *testing.T, r *cloudgen.ROM, _ *devices.Device) string { return genPayloadROM(t, r) }},
		{"xiaomi-fastboot-super", "alioth", append([]string{"boot-ramdisk"}, logicalParts...), genFastbootROM},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			d := device(t, k.device)
			for _, seed := range seeds {
				rom := cloudgen.Generate(seed)
				in := k.make(t, rom, d)
				out := filepath.Join(t.TempDir(), "bundle")
				res, err := Run(context.Background(), Options{Device: d, Input: in, Sets: sets, Out: out})
				if err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				checkBuild(t, rom, res, out, k.parts, sets)
			}
		})
	}
}

// TestHardenedBuildKernelMounts: the built EROFS system of a generated ROM mounts with the kernel and
// the decoys read back byte-identical through it (root only).
func TestHardenedBuildKernelMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop mounts need root")
	}
	rom := cloudgen.Generate(21)
	d := device(t, "alioth")
	out := filepath.Join(t.TempDir(), "bundle")
	res, err := Run(context.Background(), Options{Device: d, Input: genPayloadROM(t, rom), Sets: hardened(t), Out: out, Super: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Hardening.Clean() {
		t.Fatalf("left %v", res.Hardening.Left)
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	if o, err := validators.RunErr("mount", "-t", "erofs", "-o", "loop,ro", filepath.Join(out, "images/system.img"), mnt); err != nil {
		t.Skipf("kernel mount unavailable: %v %s", err, o)
	}
	defer validators.RunErr("umount", mnt)
	n := 0
	for _, p := range rom.DecoyFiles {
		part, rel, _ := strings.Cut(p, "/")
		if part != "system" {
			continue
		}
		want, _ := rom.Parts[part].ReadFile(rel)
		got, err := os.ReadFile(filepath.Join(mnt, filepath.FromSlash(rel)))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("decoy %s through the kernel: %v", p, err)
		}
		n++
	}
	for _, p := range rom.Planted {
		part, rel, _ := strings.Cut(p.Path, "/")
		if part == "system" && (p.Kind == "apk" || p.Kind == "daemon" || p.Kind == "library") {
			if _, err := os.Lstat(filepath.Join(mnt, filepath.FromSlash(rel))); !errorsIsNotExist(err) {
				t.Fatalf("planted %s visible through the kernel (%v)", p.Path, err)
			}
		}
	}
	if hosts, err := os.ReadFile(filepath.Join(mnt, "etc/hosts")); err != nil || !bytes.Contains(hosts, []byte("0.0.0.0 api.xmpush.xiaomi.com")) {
		t.Fatalf("hosts through the kernel: %v", err)
	}
	t.Logf("%d system decoys byte-identical through the kernel", n)
}

func errorsIsNotExist(err error) bool {
	return err != nil && os.IsNotExist(err) || err != nil && strings.Contains(err.Error(), fs.ErrNotExist.Error())
}

// TestVendorBootRamdisksHardened: a vendor_boot v4 image with two ramdisk fragments (one holding a cloud
// daemon and its init service, one holding a decoy) is hardened in place: the daemon is removed, its
// service disabled, the other fragment and every other section byte-identical.
func TestVendorBootRamdisksHardened(t *testing.T) {
	mk := func(files map[string]string) image.Image {
		a := cpio.New()
		a.AddDir("etc", 0o755, 0, 0)
		a.AddDir("etc/init", 0o755, 0, 0)
		a.AddDir("bin", 0o755, 0, 0)
		var names []string
		for n := range files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			a.AddFile(n, []byte(files[n]), 0o755, 0, 0)
		}
		b := a.Bytes()
		return image.New(bytes.NewReader(b), int64(len(b)))
	}
	cloud := mk(map[string]string{
		"bin/qzxsyncd":      "\x7fELF\x02\x01\x01\x00 https://tq.rlog.xiaomi.net/upload\x00",
		"etc/init/qzxs.rc":  "service qzxsync /bin/qzxsyncd\n    class main\n\non boot\n    start qzxsync\n",
		"etc/init/other.rc": "service vendor_keep /vendor/bin/keepd\n    class hal\n",
		"etc/vendor.conf":   "probe=https://connectivitycheck.gstatic.com/generate_204\n",
	})
	decoy := mk(map[string]string{"etc/init/dlkm.rc": "on early-init\n    insmod /lib/modules/foo.ko\n"})
	args := bootimg.DefaultArgs()
	args.VendorBoot, args.HeaderVersion, args.PageSize = true, 4, 4096
	args.VendorRamdiskFragments = []bootimg.RamdiskFragment{{Type: 1, Name: "cloud", Data: cloud}, {Type: 3, Name: "dlkm", Data: decoy}}
	out, err := bootimg.Build(&args)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := out.Bytes()
	out.Close()
	dir := t.TempDir()
	vb := filepath.Join(dir, "vendor_boot.img")
	os.WriteFile(vb, b, 0o644)
	parts := []*part{{name: "vendor_boot", work: vb}}
	rds, err := openRamdisks(parts, t.Logf)
	if err != nil || len(rds["vendor_boot"]) != 2 {
		t.Fatalf("ramdisks %v: %v", rds, err)
	}
	trees := map[string]tree.Tree{}
	for _, rd := range rds["vendor_boot"] {
		trees[rd.Name] = rd.Tree
	}
	target := patches.NewTarget(trees)
	res, err := harden.Run(context.Background(), target, hardened(t), harden.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Outcome.Clean() || len(res.Outcome.Before) == 0 {
		t.Fatalf("before %v, left %v", res.Outcome.Before, res.Outcome.Left)
	}
	ch, err := writeRamdisks(context.Background(), vb, t.TempDir(), rds["vendor_boot"], target)
	if err != nil || len(ch) == 0 {
		t.Fatalf("changes %v: %v", ch, err)
	}
	f, _ := image.OpenFile(vb)
	defer f.Close()
	back, _, err := patches.ReadBootRamdisks(f, f.Size(), "vendor_boot")
	if err != nil || len(back) != 2 {
		t.Fatalf("re-read: %v", err)
	}
	if _, err := back[0].Tree.Meta("bin/qzxsyncd"); err == nil {
		t.Fatal("the cloud daemon is still in the vendor ramdisk")
	}
	rc, _ := back[0].Tree.ReadFile("etc/init/qzxs.rc")
	if !strings.Contains(string(rc), "    disabled\n") || !strings.Contains(string(rc), "# romforge: start qzxsync") {
		t.Fatalf("qzxs.rc:\n%s", rc)
	}
	for _, keep := range []string{"etc/init/other.rc", "etc/vendor.conf"} {
		if got, _ := back[0].Tree.ReadFile(keep); !strings.Contains(string(got), "\n") || strings.Contains(string(got), "disabled") {
			t.Fatalf("%s touched:\n%s", keep, got)
		}
	}
	im, err := bootimg.Parse(f, f.Size())
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := io.ReadAll(im.VendorRamdisk(1))
	d0, _ := io.ReadAll(image.Reader(decoy))
	if !bytes.Equal(d0, d1) {
		t.Fatal("the untouched vendor ramdisk fragment changed")
	}
}
