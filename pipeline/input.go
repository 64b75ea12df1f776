package pipeline

import (
	"archive/zip"
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/image/blockota"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
)

// Input is an opened ROM: named partitions that can be materialised as raw images.
type Input interface {
	Kind() string
	// Metadata is the OTA metadata (ota-type, pre-device, post-build, …), possibly empty.
	Metadata() map[string]string
	// Partitions lists what the ROM carries, in flash order.
	Partitions() []string
	// Extract writes partition name as a raw image to path.
	Extract(ctx context.Context, name, path string) error
	// UpdateBinary is the recovery updater shipped in the ROM (nil when there is none).
	UpdateBinary() []byte
	// AntiVersion is the anti-rollback version the ROM states (-1: none).
	AntiVersion() int
	Close() error
}

// openers try to open an input; the first that recognises it wins. Format packages register theirs.
// The device is passed because some inputs are built to its partition sizes (file OTAs).
var openers []func(path string, d *devices.Device) (Input, bool, error)

func registerOpener(f func(path string, d *devices.Device) (Input, bool, error)) {
	openers = append(openers, f)
}

// Open recognises and opens a ROM input for device d (nil: no device-specific sizing).
func Open(path string, d *devices.Device) (Input, error) {
	for _, o := range openers {
		in, ok, err := o(path, d)
		if err != nil {
			return nil, err
		}
		if ok {
			return in, nil
		}
	}
	return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("build: %s is not a ROM romforge can unpack (A/B payload zip, block or file OTA zip, Xiaomi fastboot ROM, or a folder of images)", path))
}

func init() {
	registerOpener(openBlockOTA)
	registerOpener(openImageDir)
}

// parseMetadata reads META-INF/com/android/metadata-style key=value lines.
func parseMetadata(r io.Reader) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// zipRead reads a small zip entry (bounded).
func zipRead(f *zip.File, limit int64) ([]byte, error) {
	if int64(f.UncompressedSize64) > limit {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("build: %s claims %d bytes", f.Name, f.UncompressedSize64))
	}
	rc, err := f.Open()
	if err != nil {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("build: %s: %w", f.Name, err))
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("build: %s: %w", f.Name, err))
	}
	return b, nil
}

// blockOTA is a recovery zip with PART.transfer.list + PART.new.dat[.br|.xz] and raw images.
type blockOTA struct {
	zr     *zip.ReadCloser
	files  map[string]*zip.File
	parts  []string
	meta   map[string]string
	binary []byte
}

func openBlockOTA(path string, _ *devices.Device) (Input, bool, error) {
	if st, err := os.Stat(path); err != nil || st.IsDir() {
		return nil, false, nil
	}
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, false, nil // not a zip: another opener's
	}
	b := &blockOTA{zr: zr, files: map[string]*zip.File{}, meta: map[string]string{}}
	for _, f := range zr.File {
		b.files[f.Name] = f
	}
	var block, raw []string
	for name := range b.files {
		if strings.Contains(name, "/") {
			continue
		}
		if p, ok := strings.CutSuffix(name, ".transfer.list"); ok {
			block = append(block, p)
		} else if p, ok := strings.CutSuffix(name, ".img"); ok {
			raw = append(raw, p)
		}
	}
	if len(block) == 0 {
		zr.Close()
		return nil, false, nil
	}
	sort.Strings(block)
	sort.Strings(raw)
	b.parts = append(raw, block...) // boot first, then filesystems
	if f := b.files["META-INF/com/android/metadata"]; f != nil {
		if data, err := zipRead(f, 1<<20); err == nil {
			b.meta = parseMetadata(strings.NewReader(string(data)))
		}
	}
	if f := b.files["META-INF/com/google/android/update-binary"]; f != nil {
		b.binary, _ = zipRead(f, 64<<20)
	}
	return b, true, nil
}

func (b *blockOTA) Kind() string                { return "block-ota-zip" }
func (b *blockOTA) Metadata() map[string]string { return b.meta }
func (b *blockOTA) Partitions() []string        { return b.parts }
func (b *blockOTA) UpdateBinary() []byte        { return b.binary }
func (b *blockOTA) AntiVersion() int            { return -1 }
func (b *blockOTA) Close() error                { return b.zr.Close() }

func (b *blockOTA) Extract(ctx context.Context, name, path string) error {
	if f := b.files[name+".img"]; f != nil {
		return copyZipEntry(ctx, f, path)
	}
	tlf := b.files[name+".transfer.list"]
	if tlf == nil {
		return fmt.Errorf("build: no partition %s in the OTA", name)
	}
	// Streamed: Parse bounds each line itself, so a huge list costs little memory.
	tlr, err := tlf.Open()
	if err != nil {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("build: %s: %w", tlf.Name, err))
	}
	tl, err := blockota.Parse(tlr)
	tlr.Close()
	if err != nil {
		return fmt.Errorf("build: %s.transfer.list: %w", name, err)
	}
	var dat *zip.File
	suffix := ""
	for _, s := range []string{".new.dat.br", ".new.dat.xz", ".new.dat"} {
		if f := b.files[name+s]; f != nil {
			dat, suffix = f, s
			break
		}
	}
	if dat == nil {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("build: %s.new.dat missing from the OTA", name))
	}
	// OpenNewData picks decompression by file name, so stage the (already compressed) entry.
	tmp := path + suffix
	if err := copyZipEntry(ctx, dat, tmp); err != nil {
		return err
	}
	defer os.Remove(tmp)
	nd, err := blockota.OpenNewData(tmp)
	if err != nil {
		return err
	}
	defer nd.Close()
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	// The compressed entries are the evidence that bounds the image size the list declares.
	err = blockota.ApplyWith(ctx, tl, nd, out, blockota.ApplyOptions{Name: name,
		Evidence: int64(min(tlf.CompressedSize64+dat.CompressedSize64, 1<<62))})
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func copyZipEntry(ctx context.Context, f *zip.File, path string) error {
	rc, err := f.Open()
	if err != nil {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("build: %s: %w", f.Name, err))
	}
	defer rc.Close()
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = safeio.CopyContext(ctx, out, rc)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err() // interrupted, not a damaged entry
	}
	if err != nil {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("build: %s: %w", f.Name, err))
	}
	return nil
}

// imageDir is a folder of PART.img files (e.g. what `romforge unpack` wrote).
type imageDir struct {
	dir   string
	parts []string
}

func openImageDir(path string, _ *devices.Device) (Input, bool, error) {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return nil, false, nil
	}
	imgs, _ := filepath.Glob(filepath.Join(path, "*.img"))
	if len(imgs) == 0 {
		return nil, false, nil
	}
	d := &imageDir{dir: path}
	for _, p := range imgs {
		d.parts = append(d.parts, strings.TrimSuffix(filepath.Base(p), ".img"))
	}
	sort.Strings(d.parts)
	return d, true, nil
}

func (d *imageDir) Kind() string                { return "image-dir" }
func (d *imageDir) Metadata() map[string]string { return map[string]string{} }
func (d *imageDir) Partitions() []string        { return d.parts }
func (d *imageDir) UpdateBinary() []byte        { return nil }
func (d *imageDir) AntiVersion() int            { return -1 }
func (d *imageDir) Close() error                { return nil }
func (d *imageDir) Extract(ctx context.Context, name, path string) error {
	in, err := os.Open(filepath.Join(d.dir, name+".img"))
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = safeio.CopyContext(ctx, out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyImage copies a whole image to w.
func copyImage(ctx context.Context, w io.Writer, img interface {
	ReadAt([]byte, int64) (int, error)
	Size() int64
}) (int64, error) {
	return safeio.CopyContext(ctx, w, io.NewSectionReader(img, 0, img.Size()))
}
