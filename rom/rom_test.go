package rom

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
)

func TestDetectFixtures(t *testing.T) {
	fx := validators.Fixtures(t)
	tgz, _ := filepath.Glob(filepath.Join(fx, "fastboot", "*.tgz"))
	cases := map[string]struct {
		kind, inner Kind
	}{
		"payload/ota-full.zip":               {KindABPayloadZip, ""},
		"payload/full/payload.bin":           {KindPayloadBin, ""},
		"payload/delta/payload.bin":          {KindPayloadBin, ""},
		"fastboot/armani-update.zip":         {KindFastbootUpdateZip, ""},
		"fastboot/armani-dynamic-update.zip": {KindFastbootUpdateZip, ""},
		"super/super.img":                    {KindSuper, ""},
		"super/super_empty.img":              {KindSuper, ""},
		"super/super-ab.img":                 {KindSuper, ""},
		"super/super.sparse.img":             {KindSparse, KindSuper},
		"ext4/system.sparse.img":             {KindSparse, KindExt4},
		"erofs/system.lz4hc.sparse.img":      {KindSparse, KindErofs},
		"sparse/pattern.sparse.img":          {KindSparse, KindUnknown},
		"sparse/pattern.raw":                 {KindUnknown, ""},
		"boot/boot-v0.img":                   {KindBoot, ""},
		"boot/boot-v4.img":                   {KindBoot, ""},
		"boot/vendor_boot-v4.img":            {KindVendorBoot, ""},
		"avb/vbmeta.img":                     {KindVbmeta, ""},
		"avb/boot.img":                       {KindBoot, ""},
		"avb/system.img":                     {KindExt4, ""},
		"ext4/system.img":                    {KindExt4, ""},
		"erofs/system.img":                   {KindErofs, ""},
		"erofs/system.lz4hc.img":             {KindErofs, ""},
		"rom/system/build.prop":              {KindUnknown, ""},
		"rom":                                {KindUnknown, ""},
	}
	if len(tgz) == 1 {
		rel, _ := filepath.Rel(fx, tgz[0])
		cases[rel] = struct{ kind, inner Kind }{KindXiaomiFastbootTGZ, ""}
	}
	for rel, want := range cases {
		in, err := Detect(filepath.Join(fx, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if in.Kind != want.kind || in.Inner != want.inner {
			t.Errorf("%s: kind %s/%s, want %s/%s", rel, in.Kind, in.Inner, want.kind, want.inner)
		}
	}
	ota, err := Detect(filepath.Join(fx, "payload/ota-full.zip"))
	if err != nil {
		t.Fatal(err)
	}
	m := ota.OTAMetadata
	if m == nil || m.OTAType != "AB" || !reflect.DeepEqual(m.PreDevice, []string{"armani"}) || m.PostTimestamp != 1700000000 ||
		!strings.HasPrefix(m.PostBuild, "Xiaomi/armani/armani:") || m.Incremental {
		t.Errorf("metadata %+v", m)
	}
	pb, _ := os.ReadFile(filepath.Join(fx, "payload/full/payload.bin"))
	z, _ := os.ReadFile(filepath.Join(fx, "payload/ota-full.zip"))
	if ota.PayloadSize != int64(len(pb)) || !bytes.Equal(z[ota.PayloadOffset:ota.PayloadOffset+ota.PayloadSize], pb) || ota.PayloadProperties["FILE_SIZE"] == "" {
		t.Errorf("payload at %d+%d does not match payload.bin (%v)", ota.PayloadOffset, ota.PayloadSize, ota.PayloadProperties)
	}
	fb, _ := Detect(filepath.Join(fx, "fastboot/armani-dynamic-update.zip"))
	if fb.AndroidInfo == nil || !reflect.DeepEqual(fb.AndroidInfo.Boards, []string{"armani"}) ||
		!reflect.DeepEqual(fb.Partitions, []string{"boot", "super_empty", "system", "vendor"}) {
		t.Errorf("fastboot zip %+v %+v", fb, fb.AndroidInfo)
	}
	if r := fb.AndroidInfo.Requirements; len(r) != 2 || r[1].Name != "version-bootloader" || r[1].Values[0] != "armani-1.0" {
		t.Errorf("requirements %+v", r)
	}
	if len(tgz) == 1 {
		dir := t.TempDir()
		validators.Run(t, "tar", "-xzf", tgz[0], "-C", dir)
		sub, _ := filepath.Glob(filepath.Join(dir, "*"))
		in, err := Detect(sub[0])
		if err != nil || in.Kind != KindXiaomiFastbootDir {
			t.Errorf("extracted ROM dir: %+v %v", in, err)
		}
	}
}

const fileOTAScript = `assert(getprop("ro.product.device") == "armani" || getprop("ro.build.product") == "armani" || abort("wrong device"););
mount("ext4", "EMMC", "/dev/block/platform/msm_sdcc.1/by-name/system", "/system");
package_extract_dir("system", "/system");
symlink("toybox", "/system/bin/ls", "/system/bin/cat");
symlink("/data/misc/audio/mbhc.bin", "/system/etc/firmware/wcd9320/wcd9320_mbhc.bin");
set_metadata_recursive("/system", "uid", 0, "gid", 0, "dmode", 0755, "fmode", 0644, "capabilities", 0x0, "selabel", "u:object_r:system_file:s0");
set_metadata_recursive("/system/bin", "uid", 0, "gid", 2000, "dmode", 0755, "fmode", 0755, "capabilities", 0x0, "selabel", "u:object_r:system_file:s0");
set_metadata("/system/bin/netd_fake", "uid", 0, "gid", 2000, "mode", 0750, "capabilities", 0x3000, "selabel", "u:object_r:netd_exec:s0");
set_perm(0, 3003, 02750, "/system/bin/netcfg");
set_perm(1000, 1000, 0640, "/system/etc/hosts");
`

type zent struct{ name, body string }

func makeZip(t *testing.T, ents []zent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: time.Date(2014, 8, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, e.body)
	}
	zw.Close()
	return buf.Bytes()
}

func fileOTAZip(t *testing.T) []byte {
	return makeZip(t, []zent{
		{"META-INF/com/google/android/updater-script", fileOTAScript},
		{"META-INF/com/google/android/update-binary", "\x7fELF"},
		{"system/build.prop", "ro.product.device=armani\n"},
		{"system/bin/toybox", "TOYBOX"},
		{"system/bin/netd_fake", "NETD"},
		{"system/bin/netcfg", "NETCFG"},
		{"system/bin/ls", "replaced by the symlink"},
		{"system/etc/hosts", "127.0.0.1 localhost\n"},
		{"system/app/", ""},
		{"system/lib/libbig.so", strings.Repeat("L", 100000)},
		{"boot.img", "ANDROID!"},
	})
}

func TestFileOTATree(t *testing.T) {
	data := fileOTAZip(t)
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := FileOTATree(zr)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		mode     fs.FileMode
		uid, gid uint32
		label    string
		caps     uint64
		target   string
	}
	sys := "u:object_r:system_file:s0"
	for name, w := range map[string]want{
		".":                                     {fs.ModeDir | 0o755, 0, 0, sys, 0, ""},
		"bin":                                   {fs.ModeDir | 0o755, 0, 2000, sys, 0, ""},
		"bin/toybox":                            {0o755, 0, 2000, sys, 0, ""},
		"bin/netd_fake":                         {0o750, 0, 2000, "u:object_r:netd_exec:s0", 0x3000, ""},
		"bin/netcfg":                            {0o750 | fs.ModeSetgid, 0, 3003, sys, 0, ""},
		"bin/ls":                                {fs.ModeSymlink | 0o777, 0, 2000, sys, 0, "toybox"},
		"bin/cat":                               {fs.ModeSymlink | 0o777, 0, 2000, sys, 0, "toybox"},
		"etc/hosts":                             {0o640, 1000, 1000, sys, 0, ""},
		"etc/firmware/wcd9320":                  {fs.ModeDir | 0o755, 0, 0, sys, 0, ""},
		"etc/firmware/wcd9320/wcd9320_mbhc.bin": {fs.ModeSymlink | 0o777, 0, 0, sys, 0, "/data/misc/audio/mbhc.bin"},
		"app":                                   {fs.ModeDir | 0o755, 0, 0, sys, 0, ""},
		"build.prop":                            {0o644, 0, 0, sys, 0, ""},
	} {
		m, err := tr.Meta(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		got := want{m.Mode, m.UID, m.GID, m.SELinux(), m.Capabilities(), m.Target}
		if got != w {
			t.Errorf("%s: got %+v want %+v", name, got, w)
		}
	}
	if _, err := tr.Meta("boot.img"); err == nil {
		t.Error("boot.img outside system/ is in the tree")
	}
	// Contents stream from the zip, and the whole tree walks cleanly.
	b, err := fs.ReadFile(tr, "lib/libbig.so")
	if err != nil || len(b) != 100000 {
		t.Fatalf("libbig.so: %d %v", len(b), err)
	}
	var names []string
	if err := tree.Walk(tr, func(name string, m tree.Meta) error {
		names = append(names, name)
		if m.Mode.IsRegular() {
			f, err := tr.Open(name)
			if err != nil {
				return err
			}
			defer f.Close()
			n, err := io.Copy(io.Discard, f)
			if err != nil || n != m.Size {
				t.Errorf("%s: read %d of %d: %v", name, n, m.Size, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(names) != 16 {
		t.Errorf("walked %d entries: %v", len(names), names)
	}
	if !reflect.DeepEqual(tr.Script.Devices, []string{"armani"}) {
		t.Errorf("devices %v", tr.Script.Devices)
	}

	dir := t.TempDir()
	p := filepath.Join(dir, "cm-11-armani.zip")
	os.WriteFile(p, data, 0o644)
	in, err := Detect(p)
	if err != nil || in.Kind != KindFileOTAZip || !reflect.DeepEqual(in.Devices, []string{"armani"}) {
		t.Errorf("detect file OTA: %+v %v", in, err)
	}
}

func TestDetectSyntheticZips(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	block := write("block.zip", makeZip(t, []zent{
		{"META-INF/com/android/metadata", "ota-type=BLOCK\npost-build=Xiaomi/armani/armani:4.4.4/KTU84P/V7.0.5.0:user/release-keys\npost-timestamp=1415000000\npre-device=armani\n"},
		{"META-INF/com/google/android/updater-script", `assert(getprop("ro.product.device") == "armani");` + "\nblock_image_update(\"/dev/block/system\", package_extract_file(\"system.transfer.list\"), \"system.new.dat.br\", \"system.patch.dat\");"},
		{"system.transfer.list", "4\n10\n0\n0\nnew 2,0,10\n"},
		{"system.new.dat.br", "x"},
		{"system.patch.dat", ""},
		{"vendor.transfer.list", "4\n1\n0\n0\nnew 2,0,1\n"},
		{"vendor.new.dat", "x"},
		{"boot.img", "ANDROID!"},
	}))
	in, err := Detect(block)
	if err != nil || in.Kind != KindBlockOTAZip || !reflect.DeepEqual(in.Partitions, []string{"system", "vendor"}) ||
		in.OTAMetadata.OTAType != "BLOCK" || !reflect.DeepEqual(in.Devices, []string{"armani"}) {
		t.Errorf("block OTA: %+v %v", in, err)
	}
	other := write("other.zip", makeZip(t, []zent{{"readme.txt", "hi"}}))
	if in, err := Detect(other); err != nil || in.Kind != KindZip {
		t.Errorf("plain zip: %+v %v", in, err)
	}
	full, _ := os.ReadFile(block)
	trunc := write("trunc.zip", full[:len(full)-30])
	if _, err := Detect(trunc); !errors.Is(err, failure.ErrInvalid) {
		t.Errorf("truncated zip: %v", err)
	}
	bad := write("badmeta.zip", makeZip(t, []zent{{"META-INF/com/android/metadata", "post-timestamp=soon\n"}, {"payload.bin", "CrAU"}}))
	if _, err := Detect(bad); !errors.Is(err, failure.ErrInvalid) {
		t.Errorf("bad metadata: %v", err)
	}
	// payload.bin must be stored so it can be read in place.
	deflated := write("deflated.zip", makeZip(t, []zent{{"payload.bin", "CrAU"}}))
	if _, err := Detect(deflated); !errors.Is(err, failure.ErrInvalid) {
		t.Errorf("deflated payload: %v", err)
	}
	if _, err := Detect(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestFileOTAHostile(t *testing.T) {
	for name, ents := range map[string][]zent{
		"no script":     {{"system/build.prop", "x"}},
		"bad script":    {{UpdaterScriptPath, `set_perm(`}, {"system/a", "x"}},
		"escape":        {{UpdaterScriptPath, ``}, {"system/../../etc/passwd", "x"}},
		"file and dir":  {{UpdaterScriptPath, ``}, {"system/a", "x"}, {"system/a/b", "y"}},
		"duplicate":     {{UpdaterScriptPath, ``}, {"system/a", "x"}, {"system/a", "y"}},
		"symlink a dir": {{UpdaterScriptPath, `symlink("x", "/system/d");`}, {"system/d/f", "x"}},
	} {
		data := makeZip(t, ents)
		zr, _ := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		_, err := FileOTATree(zr)
		if !errors.Is(err, failure.ErrInvalid) && !errors.Is(err, failure.ErrRefused) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestAndroidInfo(t *testing.T) {
	ai, err := ParseAndroidInfo(strings.NewReader("# comment\nrequire board=armani|HM1SW\nrequire-for-product:armani version-baseband=1.0|2.0\nreject partition-exists=vendor_boot\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ai.Boards, []string{"armani", "HM1SW"}) || len(ai.Requirements) != 3 || ai.Requirements[1].Product != "armani" || !ai.Requirements[2].Reject {
		t.Errorf("%+v", ai)
	}
	for _, bad := range []string{"require\n", "frobnicate x=y\n", "require =x\n"} {
		if _, err := ParseAndroidInfo(strings.NewReader(bad)); !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzOTAMetadata(f *testing.F) {
	f.Add("ota-type=AB\npost-build=Xiaomi/armani/armani:5.1.1/LMY49J/1700000000:userdebug/test-keys\npost-timestamp=1700000000\npre-device=armani\n")
	f.Add("ota-type=BLOCK\npre-build=a\npre-device=a|b,c\n")
	f.Add("require board=armani\nrequire version-bootloader=armani-1.0\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseOTAMetadata(strings.NewReader(s))
		if err != nil {
			if !errors.Is(err, failure.ErrInvalid) {
				t.Fatal(err)
			}
		} else if m.Values == nil {
			t.Fatal("nil values")
		}
		if _, err := ParseAndroidInfo(strings.NewReader(s)); err != nil && !errors.Is(err, failure.ErrInvalid) {
			t.Fatal(err)
		}
	})
}
