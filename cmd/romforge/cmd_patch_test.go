package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/fs/erofs"
	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/bootimg"
	"github.com/romforge/romforge/image/cpio"
	"github.com/romforge/romforge/image/lp"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/internal/validators"
	"github.com/romforge/romforge/patches/cloudgen"
	"github.com/romforge/romforge/patches/miuitest"
)

// writeTree materialises a tree on disk (contents and modes; owners need root and are not needed here).
func writeTree(t *testing.T, tr tree.Tree, dir string) {
	t.Helper()
	err := tree.Walk(tr, func(name string, m tree.Meta) error {
		p := filepath.Join(dir, filepath.FromSlash(name))
		switch {
		case m.Mode.IsDir():
			return os.MkdirAll(p, 0o755)
		case m.Mode&fs.ModeSymlink != 0:
			return os.Symlink(m.Target, p)
		}
		f, err := tr.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil {
			return err
		}
		return os.WriteFile(p, b, m.Mode.Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPatchAndAuditDirectory(t *testing.T) {
	dir := t.TempDir()
	for name, tr := range miuitest.Trees(miuitest.Options{}) {
		writeTree(t, tr, filepath.Join(dir, name))
	}
	code, out, _ := runCLI(t, "audit", dir, "--set", "xiaomi-hardened")
	if code != exitFindings || !strings.Contains(out, "package com.xiaomi.xmsf") {
		t.Fatalf("audit before: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "patch", "--dry-run", dir, "--set", "xiaomi-hardened", "--json")
	if code != 0 || !strings.Contains(out, `"dry_run": true`) {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "system/app/XMSF/XMSF.apk")); err != nil {
		t.Fatal("dry run removed files")
	}
	code, out, errs := runCLI(t, "patch", dir, "--set", "xiaomi-hardened")
	if code != 0 || !strings.Contains(out, "patched:") {
		t.Fatalf("patch: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = runCLI(t, "--json", "audit", dir)
	if code != 0 || !strings.Contains(out, `"findings": []`) && !strings.Contains(out, `"findings": null`) {
		t.Fatalf("audit after: exit %d\n%s", code, out)
	}
	if code, _, _ := runCLI(t, "patch", dir, "--set", "no-such-set"); code != exitUsage {
		t.Fatalf("unknown set: exit %d", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("name: b\nsteps:\n  - kind: nope\n"), 0o644)
	if code, _, errs := runCLI(t, "patch", dir, "--set", bad); code != exitInvalid || !strings.Contains(errs, "bad.yaml:3") {
		t.Fatalf("bad set: exit %d %s", code, errs)
	}
}

// TestPatchImages patches the fixture ext4 and EROFS images into new images, which the real checkers
// accept and which then audit clean; the inputs are untouched.
func TestPatchImages(t *testing.T) {
	fx := validators.Fixtures(t)
	for _, in := range []string{"ext4/system.img", "erofs/system.lz4hc.img"} {
		src := filepath.Join(fx, in)
		before, _ := os.ReadFile(src)
		if code, _, _ := runCLI(t, "audit", src); code != exitFindings {
			t.Fatalf("%s: audit before exit %d", in, code)
		}
		out := filepath.Join(t.TempDir(), "patched.img")
		if code, _, _ := runCLI(t, "patch", src, "--set", "xiaomi-hardened"); code != exitUsage {
			t.Fatalf("%s: image patch without -o: exit %d", in, code)
		}
		code, stdout, stderr := runCLI(t, "patch", src, "--set", "xiaomi-hardened", "-o", out, "--json")
		if code != 0 || !strings.Contains(stdout, `"files_removed"`) {
			t.Fatalf("%s: patch exit %d\n%s\n%s", in, code, stdout, stderr)
		}
		if code, stdout, _ := runCLI(t, "audit", out); code != 0 {
			t.Fatalf("%s: audit after exit %d\n%s", in, code, stdout)
		}
		if strings.HasPrefix(in, "ext4") {
			validators.Run(t, validators.Tool(t, "e2fsck"), "-fn", out)
		} else {
			validators.Run(t, validators.Tool(t, "fsck.erofs"), out)
		}
		after, _ := os.ReadFile(src)
		if !bytes.Equal(before, after) {
			t.Fatalf("%s: input changed", in)
		}
	}
}

// TestAuditContainers audits the filesystems inside super, an A/B OTA zip and a Xiaomi fastboot ROM.
func TestAuditContainers(t *testing.T) {
	fx := validators.Fixtures(t)
	tgz, _ := filepath.Glob(filepath.Join(fx, "fastboot/armani_images_*.tgz"))
	for _, in := range []string{filepath.Join(fx, "super/super.img"), filepath.Join(fx, "payload/ota-full.zip"), tgz[0]} {
		code, stdout, stderr := runCLI(t, "audit", in, "--json")
		if code != exitFindings || !strings.Contains(stdout, `"match": "com.xiaomi.xmsf"`) || !strings.Contains(stdout, `"partition": "system"`) {
			t.Errorf("%s: exit %d\n%s\n%s", filepath.Base(in), code, stdout, stderr)
		}
	}
	if code, _, _ := runCLI(t, "patch", filepath.Join(fx, "super/super.img"), "--set", "xiaomi-cloud", "-o", filepath.Join(t.TempDir(), "x")); code != exitUsage {
		t.Errorf("patching a container: exit %d, want usage (build does that)", code)
	}
}

// TestPatchThenAuditConvergesOnGeneratedROMs: on trees with cloud components planted under random names
// (patches/cloudgen), `patch --set xiaomi-hardened` exits 0 and the `audit` that follows is clean, with
// every decoy file byte-identical.
func TestPatchThenAuditConvergesOnGeneratedROMs(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		rom := cloudgen.Generate(seed)
		dir := t.TempDir()
		for name, tr := range rom.Parts {
			if name == "boot-ramdisk" {
				continue // a folder of partitions has no ramdisk; build covers boot images
			}
			writeTree(t, tr, filepath.Join(dir, name))
		}
		if code, out, _ := runCLI(t, "audit", dir, "--set", "xiaomi-hardened"); code != exitFindings {
			t.Fatalf("seed %d: audit before: exit %d\n%s", seed, code, out)
		}
		code, out, errs := runCLI(t, "patch", dir, "--set", "xiaomi-hardened")
		if code != 0 || !strings.Contains(out, "hardening: ") || !strings.Contains(out, " 0 left") {
			t.Fatalf("seed %d: patch: exit %d\n%s\n%s", seed, code, out, errs)
		}
		if code, out, _ := runCLI(t, "audit", dir, "--set", "xiaomi-hardened"); code != 0 {
			t.Fatalf("seed %d: audit after: exit %d\n%s", seed, code, out)
		}
		for _, p := range rom.DecoyFiles {
			part, rel, _ := strings.Cut(p, "/")
			if part == "boot-ramdisk" {
				continue
			}
			want, _ := rom.Parts[part].ReadFile(rel)
			got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("seed %d: decoy %s changed (%v)", seed, p, err)
			}
		}
		for _, p := range rom.Planted {
			if (p.Kind == "apk" || p.Kind == "daemon" || p.Kind == "library") && !strings.HasPrefix(p.Path, "boot-ramdisk/") {
				if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p.Path))); err == nil {
					t.Fatalf("seed %d: planted %s %s still there", seed, p.Kind, p.Path)
				}
			}
		}
	}
}

// TestAuditBootImage: `audit` reads a boot image's ramdisk (it used to answer "not a ROM romforge can
// unpack"): a cloud daemon and the service running it are findings (exit 1); a clean ramdisk exits 0.
func TestAuditBootImage(t *testing.T) {
	mk := func(files map[string]string) string {
		a := cpio.New()
		a.AddDir("sbin", 0o755, 0, 0)
		for _, n := range []string{"init.rc", "sbin/vqsyncd"} {
			if b, ok := files[n]; ok {
				a.AddFile(n, []byte(b), 0o755, 0, 0)
			}
		}
		rd := a.Bytes()
		args := bootimg.DefaultArgs()
		k := bytes.Repeat([]byte("K"), 4096)
		args.Kernel = image.New(bytes.NewReader(k), int64(len(k)))
		args.Ramdisk = image.New(bytes.NewReader(rd), int64(len(rd)))
		out, err := bootimg.Build(&args)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		b, _ := out.Bytes()
		p := filepath.Join(t.TempDir(), "boot.img")
		os.WriteFile(p, b, 0o644)
		return p
	}
	dirty := mk(map[string]string{"init.rc": "service vqsync /sbin/vqsyncd\n    class main\n", "sbin/vqsyncd": "\x7fELF\x00https://wq.data.mistat.intl.xiaomi.com/x\x00"})
	code, out, _ := runCLI(t, "audit", dirty)
	if code != exitFindings || !strings.Contains(out, "service vqsync") || !strings.Contains(out, "boot-ramdisk/sbin/vqsyncd") {
		t.Fatalf("dirty boot: exit %d\n%s", code, out)
	}
	clean := mk(map[string]string{"init.rc": "service ueventd /sbin/ueventd\n    class core\n"})
	if code, out, _ := runCLI(t, "audit", clean); code != 0 {
		t.Fatalf("clean boot: exit %d\n%s", code, out)
	}
}

// TestPatchExitsOneWhenSomethingIsLeft: a finding the closure cannot reach (a file at the root of a
// system-as-root tree, outside /system) makes `patch` exit 1 (a check found problems), not 0 or 5, and
// --json names it under hardening.left.
func TestPatchExitsOneWhenSomethingIsLeft(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "system/etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "system/build.prop"), []byte("ro.build.id=X\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "relay.conf"), []byte("server=https://up.qfx.xiaomi.net/\n"), 0o644)
	code, out, _ := runCLI(t, "patch", dir, "--partition", "system", "--set", "xiaomi-hardened", "--json")
	var doc struct {
		Hardening struct {
			Left []struct{ Match, Path string } `json:"left"`
		} `json:"hardening"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if code != exitFindings || len(doc.Hardening.Left) != 1 || doc.Hardening.Left[0].Match != "up.qfx.xiaomi.net" || doc.Hardening.Left[0].Path != "relay.conf" {
		t.Fatalf("exit %d, left %+v\n%s", code, doc.Hardening.Left, out)
	}
}

// TestAuditFastbootROMWithSuper: `audit` of a Xiaomi fastboot ROM looks inside its super.img (logical
// partitions) and its boot image's ramdisk, not only at plain filesystem images.
func TestAuditFastbootROMWithSuper(t *testing.T) {
	ctx := context.Background()
	rom := cloudgen.Generate(31)
	root := filepath.Join(t.TempDir(), "alioth_images_OS1.0.5.0.UKHCNXM_20240101.0000.00_14.0_cn")
	imgs := filepath.Join(root, "images")
	os.MkdirAll(imgs, 0o755)
	spec := lp.BuildSpec{DeviceSize: 64 << 20, MetadataMaxSize: 65536, MetadataSlots: 2, Groups: []lp.GroupSpec{{Name: "main", MaximumSize: 60 << 20}}}
	var sysImg bytes.Buffer
	if _, err := erofs.Write(ctx, writerAt{&sysImg}, rom.Parts["system"], erofs.WriteOptions{Timestamp: cloudgen.Epoch}); err != nil {
		t.Fatal(err)
	}
	spec.Partitions = []lp.PartitionSpec{{Name: "system", Group: "main", Attributes: lp.AttrReadonly, Image: image.New(bytes.NewReader(sysImg.Bytes()), int64(sysImg.Len()))}}
	img, _, err := lp.Compose(spec.WithSlotSuffixes())
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Create(filepath.Join(imgs, "super.img"))
	if err := sparse.Write(ctx, f, img, sparse.WriteOptions{HolesDontCare: true}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.WriteFile(filepath.Join(root, "flash_all.sh"), []byte("fastboot $* getvar product 2>&1 | grep \"^product: *alioth\"\nfastboot $* flash super `dirname $0`/images/super.img || exit 1\n"), 0o755)
	code, out, errs := runCLI(t, "audit", root)
	var planted string
	for _, p := range rom.Planted {
		if strings.HasPrefix(p.Path, "system/") && p.Kind == "apk" {
			planted = strings.TrimPrefix(p.Path, "system/")
		}
	}
	if code != exitFindings || planted == "" || !strings.Contains(out, "system/"+planted) {
		t.Fatalf("exit %d, want a finding in system/%s\n%s\n%s", code, planted, out, errs)
	}
}

type writerAt struct{ b *bytes.Buffer }

func (w writerAt) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > w.b.Len() {
		w.b.Write(make([]byte, end-w.b.Len()))
	}
	return copy(w.b.Bytes()[off:], p), nil
}
