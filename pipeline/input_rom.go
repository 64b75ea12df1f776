package pipeline

import (
	"archive/zip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/fs/ext4"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/rom"
	"github.com/romforge/romforge/rom/xiaomi"
)

func init() {
	registerOpener(openFileOTA)
	registerOpener(openXiaomi)
}

// fileOTA is a CyanogenMod-era file-based OTA zip: system/ files plus an updater-script that sets owners,
// modes, capabilities, labels and symlinks. Its system image is built with the ext4 writer.
type fileOTA struct {
	zr     *zip.ReadCloser
	tree   *rom.OTATree
	meta   map[string]string
	binary []byte
	boot   *zip.File
	dev    *devices.Device
}

func openFileOTA(path string, d *devices.Device) (Input, bool, error) {
	in, err := rom.Detect(path)
	if err != nil || in.Kind != rom.KindFileOTAZip {
		return nil, false, nil
	}
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, true, err
	}
	t, err := rom.FileOTATree(&zr.Reader)
	if err != nil {
		zr.Close()
		return nil, true, fmt.Errorf("build: %w", err)
	}
	f := &fileOTA{zr: zr, tree: t, meta: map[string]string{}, dev: d}
	if in.OTAMetadata != nil {
		f.meta = in.OTAMetadata.Values
	}
	if len(in.Devices) > 0 && f.meta["pre-device"] == "" {
		f.meta["pre-device"] = strings.Join(in.Devices, ",")
	}
	for _, zf := range zr.File {
		switch zf.Name {
		case "boot.img":
			f.boot = zf
		case "META-INF/com/google/android/update-binary":
			f.binary, _ = zipRead(zf, 64<<20)
		}
	}
	return f, true, nil
}

func (f *fileOTA) Kind() string                { return string(rom.KindFileOTAZip) }
func (f *fileOTA) Metadata() map[string]string { return f.meta }
func (f *fileOTA) UpdateBinary() []byte        { return f.binary }
func (f *fileOTA) AntiVersion() int            { return -1 }
func (f *fileOTA) Close() error                { return f.zr.Close() }
func (f *fileOTA) Partitions() []string {
	if f.boot != nil {
		return []string{"boot", "system"}
	}
	return []string{"system"}
}

func (f *fileOTA) Extract(ctx context.Context, name, path string) error {
	switch name {
	case "boot":
		return copyZipEntry(ctx, f.boot, path)
	case "system":
		opt := ext4.WriteOptions{Shrink: true, Margin: 64 << 20, Profile: "legacy", MountPoint: "/system", VolumeName: "system", Timestamp: Epoch()}
		if d := f.dev; d != nil {
			if p, ok := d.Partition("system"); ok && p.Size > 0 {
				opt.Size, opt.Shrink = p.Size, false
			}
			if d.AB || d.Dynamic {
				opt.Profile = "modern"
			}
		}
		out, err := os.Create(path)
		if err != nil {
			return err
		}
		res, err := ext4.Write(ctx, out, f.tree, opt)
		if err == nil {
			err = out.Truncate(res.Size)
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		return err
	}
	return fmt.Errorf("build: no partition %s in the file OTA", name)
}

// xiaomiROM is a Xiaomi fastboot ROM (tgz or folder); images are extracted (sparse ones expanded).
type xiaomiROM struct {
	path  string
	r     *xiaomi.ROM
	parts []string
	image map[string]string // partition → image name relative to the ROM root
	dir   string            // extracted copy (tgz) or the ROM folder
	tmp   string
}

func openXiaomi(path string, _ *devices.Device) (Input, bool, error) {
	in, err := rom.Detect(path)
	if err != nil || (in.Kind != rom.KindXiaomiFastbootTGZ && in.Kind != rom.KindXiaomiFastbootDir) {
		return nil, false, nil
	}
	r, err := xiaomi.Open(context.Background(), path)
	if err != nil {
		return nil, true, err
	}
	x := &xiaomiROM{path: path, r: r, image: map[string]string{}}
	for _, s := range r.Steps {
		if s.Op != xiaomi.OpFlash || s.Image == "" {
			continue
		}
		p := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s.Partition, "_ab"), "_a"), "_b")
		if _, seen := x.image[p]; !seen {
			x.parts = append(x.parts, p)
		}
		x.image[p] = s.Image
	}
	if in.IsDir {
		x.dir = filepath.Join(path, r.Root)
	}
	return x, true, nil
}

func (x *xiaomiROM) Kind() string { return "xiaomi-fastboot" }
func (x *xiaomiROM) Metadata() map[string]string {
	return map[string]string{"pre-device": strings.Join(x.r.Products, ",")}
}
func (x *xiaomiROM) Partitions() []string { return x.parts }
func (x *xiaomiROM) UpdateBinary() []byte { return nil }
func (x *xiaomiROM) AntiVersion() int     { return x.r.AntiVersion }
func (x *xiaomiROM) Close() error {
	if x.tmp != "" {
		os.RemoveAll(x.tmp)
	}
	return nil
}

func (x *xiaomiROM) Extract(ctx context.Context, name, path string) error {
	if x.dir == "" {
		tmp, err := os.MkdirTemp(filepath.Dir(path), "xiaomi-")
		if err != nil {
			return err
		}
		f, err := os.Open(x.path)
		if err != nil {
			return err
		}
		err = xiaomi.Extract(ctx, f, x.r.Root, tmp, nil, nil)
		f.Close()
		if err != nil {
			return err
		}
		x.dir, x.tmp = tmp, tmp
	}
	src := filepath.Join(x.dir, filepath.FromSlash(x.image[name]))
	img, closer, err := sparse.Open(src)
	if err != nil {
		return err
	}
	defer closer.Close()
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if si, ok := img.(*sparse.Image); ok {
		err = out.Truncate(si.Size())
		if err == nil {
			err = si.Expand(ctx, out, true, nil)
		}
	} else {
		_, err = copyImage(ctx, out, img)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
