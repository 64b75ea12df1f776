package bundle

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/blockota"
)

// RecoveryOptions describe a recovery-flashable zip.
type RecoveryOptions struct {
	// Devices are the ro.product.device values the updater-script accepts.
	Devices []string
	// BlockPrefix is where the device's partitions are (/dev/block/bootdevice/by-name by default;
	// armani: /dev/block/platform/msm_sdcc.1/by-name).
	BlockPrefix string
	// UpdateBinary is the recovery updater taken from the source ROM (a zip without it is not flashable).
	UpdateBinary []byte
	// Time stamps every entry (SOURCE_DATE_EPOCH) so the zip is reproducible.
	Time time.Time
	// Description goes into ui_print.
	Description string
}

// RecoveryZip writes a block-OTA zip: each filesystem partition as PART.new.dat.br + PART.transfer.list
// + empty PART.patch.dat, raw partitions (boot) as plain images, and an updater-script that asserts the
// device, applies the blocks and writes the images.
func RecoveryZip(ctx context.Context, w io.Writer, blockParts map[string]image.Image, rawParts map[string]image.Image, opt RecoveryOptions) error {
	if len(opt.UpdateBinary) == 0 {
		return fmt.Errorf("bundle: no update-binary from the source ROM: a recovery zip cannot be made")
	}
	if opt.BlockPrefix == "" {
		opt.BlockPrefix = "/dev/block/bootdevice/by-name"
	}
	zw := zip.NewWriter(w)
	add := func(name string, method uint16, data io.Reader) error {
		hw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method, Modified: opt.Time})
		if err != nil {
			return err
		}
		_, err = io.Copy(hw, data)
		return err
	}
	var script strings.Builder
	var asserts []string
	for _, d := range opt.Devices {
		asserts = append(asserts, fmt.Sprintf(`getprop("ro.product.device") == "%s" || getprop("ro.build.product") == "%s"`, d, d))
	}
	if len(asserts) > 0 {
		fmt.Fprintf(&script, "assert(%s || abort(\"E3004: This package is for device: %s; this device is \" + getprop(\"ro.product.device\") + \".\"););\n",
			strings.Join(asserts, " || "), strings.Join(opt.Devices, ","))
	}
	if opt.Description != "" {
		fmt.Fprintf(&script, "ui_print(\"%s\");\n", strings.ReplaceAll(opt.Description, `"`, `'`))
	}
	names := func(m map[string]image.Image) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	for _, p := range names(blockParts) {
		var dat, tl bytes.Buffer
		if err := blockota.Build(ctx, blockParts[p], &dat, &tl, blockota.BuildOptions{}); err != nil {
			return fmt.Errorf("bundle: %s block OTA: %w", p, err)
		}
		if err := add(p+".transfer.list", zip.Deflate, &tl); err != nil {
			return err
		}
		if err := add(p+".new.dat.br", zip.Store, &dat); err != nil {
			return err
		}
		if err := add(p+".patch.dat", zip.Store, bytes.NewReader(nil)); err != nil {
			return err
		}
		fmt.Fprintf(&script, "ui_print(\"Patching %s image unconditionally...\");\n", p)
		fmt.Fprintf(&script, "block_image_update(\"%s/%s\", package_extract_file(\"%s.transfer.list\"), \"%s.new.dat.br\", \"%s.patch.dat\") ||\n  abort(\"E1001: Failed to update %s image.\");\n", opt.BlockPrefix, p, p, p, p, p)
	}
	for _, p := range names(rawParts) {
		if err := add(p+".img", zip.Deflate, image.Reader(rawParts[p])); err != nil {
			return err
		}
		fmt.Fprintf(&script, "package_extract_file(\"%s.img\", \"%s/%s\");\n", p, opt.BlockPrefix, p)
	}
	script.WriteString("set_progress(1.000000);\n")
	if err := add("META-INF/com/google/android/update-binary", zip.Deflate, bytes.NewReader(opt.UpdateBinary)); err != nil {
		return err
	}
	if err := add("META-INF/com/google/android/updater-script", zip.Deflate, strings.NewReader(script.String())); err != nil {
		return err
	}
	return zw.Close()
}
