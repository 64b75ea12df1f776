package pipeline

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/demo/sample"
	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/fs/erofs"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/avb"
	"github.com/romforge/romforge/image/lp"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/patches/miuitest"
)

// xiaomiSuperROM writes a HyperOS-style fastboot ROM folder for an A/B dynamic device: flash_all.sh
// with the product check and anti-rollback version, boot, vbmeta and a sparse super.img whose slot-a
// logical partitions (EROFS system and vendor) carry the planted cloud apps.
func xiaomiSuperROM(t *testing.T, d *devices.Device) string {
	t.Helper()
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), d.Codename+"_images_OS1.0.5.0.UKHCNXM_20240101.0000.00_14.0_cn")
	imgs := filepath.Join(root, "images")
	if err := os.MkdirAll(imgs, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := lp.BuildSpec{DeviceSize: d.Super.Size, MetadataMaxSize: uint32(d.Super.MetadataSize), MetadataSlots: uint32(d.Super.MetadataSlots), VirtualAB: d.Super.VirtualAB,
		Groups: []lp.GroupSpec{{Name: d.Super.Groups[0].Name, MaximumSize: uint64(d.Super.Groups[0].MaxSize)}}}
	for name, tr := range miuitest.Partitions(miuitest.Options{}) {
		var buf memFile
		res, err := erofs.Write(ctx, &buf, tr, erofs.WriteOptions{Compression: "lz4hc", Timestamp: sample.Epoch, VolumeName: name})
		if err != nil {
			t.Fatal(err)
		}
		b := buf.b[:res.Size]
		spec.Partitions = append(spec.Partitions, lp.PartitionSpec{Name: name, Group: d.Super.Groups[0].Name, Attributes: lp.AttrReadonly, Image: image.New(bytes.NewReader(b), int64(len(b)))})
	}
	// Map iteration order must not decide the layout.
	if spec.Partitions[0].Name != "system" {
		spec.Partitions[0], spec.Partitions[1] = spec.Partitions[1], spec.Partitions[0]
	}
	img, _, err := lp.Compose(spec.WithSlotSuffixes())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(imgs, "super.img"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sparse.Write(ctx, f, img, sparse.WriteOptions{HolesDontCare: true}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	vb, _ := avb.Sign(avb.SignOptions{Algorithm: avb.AlgorithmNone, PaddingSize: 4096})
	os.WriteFile(filepath.Join(imgs, "vbmeta.img"), vb, 0o644)
	os.WriteFile(filepath.Join(imgs, "boot.img"), sample.BootImage(), 0o644)
	script := `fastboot $* getvar product 2>&1 | grep "^product: *` + d.Codename + `"
if [ $? -ne 0 ] ; then echo "Missmatching image and device"; exit 1; fi
CURRENT_ANTI_VER=1
fastboot $* flash boot_ab ` + "`dirname $0`" + `/images/boot.img || exit 1
fastboot $* flash vbmeta_ab ` + "`dirname $0`" + `/images/vbmeta.img || exit 1
fastboot $* flash super ` + "`dirname $0`" + `/images/super.img || exit 1
fastboot $* set_active a || exit 1
fastboot $* reboot || exit 1
`
	os.WriteFile(filepath.Join(root, "flash_all.sh"), []byte(script), 0o755)
	return root
}

type memFile struct{ b []byte }

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

// TestXiaomiSuperROM builds from a Xiaomi fastboot ROM whose logical partitions are inside super.img:
// they are unpacked from super, patched (the audit goes from dirty to clean), and packed into a new
// super that the AOSP tools read; the ROM's anti-rollback version reaches the manifest.
func TestXiaomiSuperROM(t *testing.T) {
	d := device(t, "alioth")
	rom := xiaomiSuperROM(t, d)
	out := filepath.Join(t.TempDir(), "bundle")
	res, err := Run(context.Background(), Options{Device: d, Input: rom, Sets: hardened(t), Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if res.Before.Clean() || !res.After.Clean() {
		t.Fatalf("audit before %d findings, after %v", len(res.Before.Findings), res.After.Findings)
	}
	m := res.Manifest
	if m.AntiVersion != 1 || m.Super == nil || m.Super.Slot != "a" {
		t.Fatalf("manifest: anti %d, super %+v", m.AntiVersion, m.Super)
	}
	var names []string
	for _, p := range m.Super.Partitions {
		names = append(names, p.Partition)
		if p.Partition == "system_a" && !p.Modified {
			t.Error("system_a not marked modified")
		}
	}
	if got := strings.Join(names, ","); got != "system_a,vendor_a" {
		t.Fatalf("super partitions %s", got)
	}
	checkSuperWithAOSPTools(t, out, m)
}
