// Package sample makes small, reproducible community-ROM releases with MIUI-like cloud apps planted, for
// romforge demo, end-to-end tests and benchmarks.
package sample

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/romforge/romforge/bundle"
	"github.com/romforge/romforge/fs/erofs"
	"github.com/romforge/romforge/fs/ext4"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/avb"
	"github.com/romforge/romforge/image/bootimg"
	"github.com/romforge/romforge/image/cpio"
	"github.com/romforge/romforge/image/payload"
	"github.com/romforge/romforge/patches/miuitest"
)

// Options size the sample ROMs.
type Options struct {
	// SystemSize is the system image size in bytes (default 64 MiB).
	SystemSize int64
	// Device is written into the OTA metadata as pre-device (default armani).
	Device string
	// Padding adds a compressible file of this many bytes to system (bigger images for benchmarks).
	Padding int
}

// Epoch stamps every sample file (reproducible samples, hence reproducible builds).
var Epoch = time.Unix(1700000000, 0).UTC()

// BootImage returns a small Android boot image (header v0, 2 KiB pages, armani-like addresses) whose
// gzip ramdisk carries init scripts with a telemetry daemon (mqsasd) and a cloud helper service.
func BootImage() []byte {
	a := cpio.New()
	a.AddDir("sbin", 0o750, 0, 0)
	a.AddFile("init", []byte("\x7fELF sample init"), 0o750, 0, 0)
	a.AddFile("init.rc", []byte("import /init.miui.rc\n\non boot\n    class_start main\n\nservice ueventd /sbin/ueventd\n    class core\n"), 0o750, 0, 0)
	a.AddFile("init.miui.rc", []byte("service mqsasd /system/bin/mqsasd\n    class main\n    user root\n\nservice cloudsync /system/bin/cloudsync --server https://api.micloud.xiaomi.net\n    class main\n\non property:sys.boot_completed=1\n    start cloudsync\n"), 0o750, 0, 0)
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(a.Bytes())
	zw.Close()
	kernel := bytes.Repeat([]byte("KERNEL"), 1000)
	args := bootimg.DefaultArgs()
	args.PageSize = 2048
	args.Kernel = image.New(bytes.NewReader(kernel), int64(len(kernel)))
	args.Ramdisk = image.New(bytes.NewReader(gz.Bytes()), int64(gz.Len()))
	args.Cmdline = "console=ttyHSL0,115200,n8 androidboot.hardware=qcom"
	out, err := bootimg.Build(&args)
	if err != nil {
		panic(fmt.Sprintf("sample: boot image: %v", err))
	}
	defer out.Close()
	b, err := out.Bytes()
	if err != nil {
		panic(fmt.Sprintf("sample: boot image: %v", err))
	}
	return b
}

// ArmaniROM writes an armani-class (A-only, ext4, no dynamic partitions) community ROM release: a
// recovery-flashable block OTA zip whose system image is a MIUI-like tree with Xiaomi cloud apps, hosts
// and props planted.
func ArmaniROM(ctx context.Context, w io.Writer, opt Options) error {
	if opt.SystemSize == 0 {
		opt.SystemSize = 64 << 20
	}
	if opt.Device == "" {
		opt.Device = "armani"
	}
	sys := miuitest.Partitions(miuitest.Options{Padding: opt.Padding})["system"]
	f, err := os.CreateTemp("", "romforge-sample-system-*.img")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := ext4.Write(ctx, f, sys, ext4.WriteOptions{Size: opt.SystemSize, Profile: "legacy", Timestamp: Epoch, MountPoint: "/system", VolumeName: "system"}); err != nil {
		return fmt.Errorf("demo: system image: %w", err)
	}
	if err := f.Truncate(opt.SystemSize); err != nil {
		return err
	}
	boot := BootImage()
	var zbuf bytes.Buffer
	err = bundle.RecoveryZip(ctx, &zbuf,
		map[string]image.Image{"system": image.New(f, opt.SystemSize)},
		map[string]image.Image{"boot": image.New(bytes.NewReader(boot), int64(len(boot)))},
		bundle.RecoveryOptions{Devices: []string{opt.Device}, BlockPrefix: "/dev/block/platform/msm_sdcc.1/by-name",
			UpdateBinary: []byte("#!/sbin/sh\n# sample updater placeholder: recoveries ship their own\n"), Time: Epoch,
			Description: "LineageOS 14.1 sample for " + opt.Device})
	if err != nil {
		return err
	}
	// Add the OTA metadata a real build carries.
	return addMetadata(w, zbuf.Bytes(), map[string]string{
		"ota-type": "BLOCK", "pre-device": opt.Device, "post-build": "Xiaomi/armani/armani:7.1.2/NJH47F/1700000000:userdebug/test-keys",
		"post-timestamp": "1700000000",
	})
}

func addMetadata(w io.Writer, zipBytes []byte, meta map[string]string) error {
	zr, err := zip.NewReader(bytes.NewReader(zipBytes), int64(len(zipBytes)))
	if err != nil {
		return err
	}
	zw := zip.NewWriter(w)
	for _, f := range zr.File {
		if err := zw.Copy(f); err != nil {
			return err
		}
	}
	hw, err := zw.CreateHeader(&zip.FileHeader{Name: "META-INF/com/android/metadata", Method: zip.Store, Modified: Epoch})
	if err != nil {
		return err
	}
	for _, k := range []string{"ota-type", "post-build", "post-timestamp", "pre-device"} {
		fmt.Fprintf(hw, "%s=%s\n", k, meta[k])
	}
	return zw.Close()
}

// ABROM writes an A/B dynamic-partitions community ROM: an OTA zip with a stored payload.bin holding
// boot, vbmeta, and EROFS system and vendor logical partitions (LZ4HC), with the same planted cloud apps.
func ABROM(ctx context.Context, w io.Writer, device string) error {
	if device == "" {
		device = "alioth"
	}
	parts := miuitest.Partitions(miuitest.Options{})
	tmp, err := os.MkdirTemp("", "romforge-sample-ab-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var wps []payload.WritePartition
	boot := BootImage()
	wps = append(wps, payload.WritePartition{Name: "boot", Image: image.New(bytes.NewReader(boot), int64(len(boot)))})
	vb, err := avb.Sign(avb.SignOptions{Algorithm: avb.AlgorithmNone, PaddingSize: 4096})
	if err != nil {
		return err
	}
	wps = append(wps, payload.WritePartition{Name: "vbmeta", Image: image.New(bytes.NewReader(vb), int64(len(vb)))})
	for _, name := range []string{"system", "vendor"} {
		f, err := os.Create(filepath.Join(tmp, name+".img"))
		if err != nil {
			return err
		}
		defer f.Close()
		res, err := erofs.Write(ctx, f, parts[name], erofs.WriteOptions{Compression: "lz4hc", Timestamp: Epoch, VolumeName: name})
		if err != nil {
			return fmt.Errorf("demo: %s image: %w", name, err)
		}
		wps = append(wps, payload.WritePartition{Name: name, Image: image.New(f, res.Size), Compression: payload.OpReplaceXZ, FilesystemType: "erofs"})
	}
	var pl bytes.Buffer
	err = payload.Write(ctx, &pl, wps, payload.WriteOptions{OpSize: 1 << 20, MaxTimestamp: Epoch.Unix(), TempDir: tmp,
		Dynamic: &payload.DynamicPartitionMetadata{Groups: []payload.DynamicPartitionGroup{{Name: "qti_dynamic_partitions", Size: 9122611200, Partitions: []string{"system", "vendor"}}}, SnapshotEnabled: true}})
	if err != nil {
		return err
	}
	zw := zip.NewWriter(w)
	add := func(name string, method uint16, data []byte) error {
		hw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method, Modified: Epoch})
		if err != nil {
			return err
		}
		_, err = hw.Write(data)
		return err
	}
	if err := add("payload.bin", zip.Store, pl.Bytes()); err != nil {
		return err
	}
	props := fmt.Sprintf("FILE_SIZE=%d\n", pl.Len())
	if err := add("payload_properties.txt", zip.Deflate, []byte(props)); err != nil {
		return err
	}
	meta := fmt.Sprintf("ota-type=AB\npost-build=POCO/%s/%s:14/UKQ1/1700000000:user/release-keys\npost-timestamp=1700000000\npre-device=%s\n", device, device, device)
	if err := add("META-INF/com/android/metadata", zip.Store, []byte(meta)); err != nil {
		return err
	}
	return zw.Close()
}
