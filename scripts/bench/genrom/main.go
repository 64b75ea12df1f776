// Command genrom makes a big A/B community-ROM OTA zip for the build benchmark: payload.bin with boot,
// vbmeta and EROFS (lz4hc) logical partitions system, system_ext, product, vendor and odm, filled with
// deterministic files that look like a ROM's (APK-like incompressible data and library/odex-like text),
// plus the MIUI-like cloud apps, hosts and props of patches/miuitest so the hardening sets have work to
// do. Operations are REPLACE_XZ compressed with the C xz (for speed; update_engine reads any xz).
//
// It is a benchmark tool, kept out of the romforge binary.
package main

import (
	"archive/zip"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/romforge/romforge/demo/sample"
	"github.com/romforge/romforge/fs/erofs"
	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/avb"
	"github.com/romforge/romforge/image/payload"
	"github.com/romforge/romforge/patches/miuitest"
	"github.com/romforge/romforge/scripts/bench/internal/benchgen"
)

func main() {
	size := flag.String("size", "512M", "bytes of file content across the filesystems (K/M/G suffix)")
	out := flag.String("out", "", "output OTA zip")
	device := flag.String("device", "alioth", "device written into the OTA metadata")
	work := flag.String("work", "", "scratch directory (default: beside -out)")
	flag.Parse()
	n, err := benchgen.ParseSize(*size)
	if err != nil || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: genrom -size 5G -out rom.zip [-device alioth]")
		os.Exit(2)
	}
	if *work == "" {
		*work = *out + ".work"
	}
	start := time.Now()
	if err := generate(context.Background(), n, *out, *device, *work); err != nil {
		fmt.Fprintln(os.Stderr, "genrom:", err)
		os.Exit(1)
	}
	st, _ := os.Stat(*out)
	fmt.Printf("genrom: %s, %d bytes, in %.0fs\n", *out, st.Size(), time.Since(start).Seconds())
}

// shares of the content per partition, as in a HyperOS-era ROM (system and product dominate).
var shares = []struct {
	name  string
	share int64 // percent
}{{"system", 45}, {"product", 30}, {"vendor", 15}, {"system_ext", 7}, {"odm", 3}}

var words = strings.Fields(`invoke-virtual move-result-object const-string iget-object return-void
	Landroid/content/Context; Ljava/lang/String; getSystemService onCreate onResume Landroid/os/Bundle;
	ldr x0, [sp, #16] bl memcpy mov w1, #0 cbz x0 ret stp x29, x30 add sp, sp, #0x40
	.text .rodata .dynsym libc.so libm.so liblog.so __cxa_finalize android::RefBase
	<manifest> <application> android:name= android:exported= <activity> <service> </manifest>`)

// fill writes deterministic content: random bytes (already-compressed APK data) or code-like text.
func fill(w io.Writer, n int64, seed uint64, text bool) error {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	buf := make([]byte, 1<<16)
	for n > 0 {
		b := buf[:min(int64(len(buf)), n)]
		if text {
			j := 0
			for j < len(b) {
				wd := words[r.IntN(len(words))]
				if r.IntN(6) == 0 {
					wd = strconv.FormatUint(r.Uint64()&0xffffff, 16)
				}
				j += copy(b[j:], wd)
				if j < len(b) {
					b[j] = " \n"[r.IntN(2)]
					j++
				}
			}
		} else {
			for j := 0; j+8 <= len(b); j += 8 {
				v := r.Uint64()
				for k := 0; k < 8; k++ {
					b[j+k] = byte(v >> (8 * k))
				}
			}
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		n -= int64(len(b))
	}
	return nil
}

// populate writes budget bytes of ROM-like files under dir.
func populate(dir, part string, budget int64, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 1))
	var i int
	for budget > 0 {
		// File sizes from 16 KiB to 32 MiB, most small, as in app and lib folders.
		sz := min(budget, int64(16<<10)<<r.IntN(12)+int64(r.IntN(4096)))
		var rel string
		text := r.IntN(100) < 45
		switch {
		case !text:
			rel = fmt.Sprintf("app/Filler%04d/Filler%04d.apk", i, i)
		case i%3 == 0:
			rel = fmt.Sprintf("lib64/libfiller%04d.so", i)
		default:
			rel = fmt.Sprintf("framework/oat/arm64/filler%04d.odex", i)
		}
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		err = fill(f, sz, seed<<20+uint64(i), text)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		budget -= sz
		i++
	}
	return nil
}

// materialize writes a tree.Mem (the planted MIUI-like files) into dir.
func materialize(t tree.Tree, dir string) error {
	return fs.WalkDir(t, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		m, err := t.Meta(p)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case m.Mode&fs.ModeSymlink != 0:
			return os.Symlink(m.Target, dst)
		}
		b, err := fs.ReadFile(t, p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, m.Mode.Perm())
	})
}

func generate(ctx context.Context, total int64, out, device, work string) error {
	os.RemoveAll(work)
	defer os.RemoveAll(work)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	planted := miuitest.Partitions(miuitest.Options{})
	boot := sample.BootImage()
	vb, err := avb.Sign(avb.SignOptions{Algorithm: avb.AlgorithmNone, PaddingSize: 4096})
	if err != nil {
		return err
	}
	wps := []payload.WritePartition{
		{Name: "boot", Image: image.New(bytes.NewReader(boot), int64(len(boot))), Compression: payload.OpReplaceXZ},
		{Name: "vbmeta", Image: image.New(bytes.NewReader(vb), int64(len(vb))), Compression: payload.OpReplace},
	}
	var names []string
	for k, s := range shares {
		dir := filepath.Join(work, "trees", s.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if t, ok := planted[s.name]; ok {
			if err := materialize(t, dir); err != nil {
				return err
			}
		}
		if err := populate(dir, s.name, total*s.share/100, uint64(k+1)); err != nil {
			return err
		}
		t, err := tree.NewDir(dir, tree.DirOptions{})
		if err != nil {
			return err
		}
		imgPath := filepath.Join(work, s.name+".img")
		f, err := os.Create(imgPath)
		if err != nil {
			return err
		}
		defer f.Close()
		t0 := time.Now()
		res, err := erofs.Write(ctx, f, t, erofs.WriteOptions{Compression: "lz4hc", Timestamp: sample.Epoch, VolumeName: s.name})
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Printf("genrom: %-10s EROFS lz4hc %5d MiB of files → %5d MiB image (%.0fs)\n", s.name, res.UncompressedBytes>>20, res.Size>>20, time.Since(t0).Seconds())
		os.RemoveAll(dir) // the image holds it now
		wps = append(wps, payload.WritePartition{Name: s.name, Image: image.New(f, res.Size), Compression: payload.OpReplaceXZ, FilesystemType: "erofs"})
		names = append(names, s.name)
	}
	xzC := func(t payload.OpType, data []byte) ([]byte, error) {
		if t != payload.OpReplaceXZ {
			return nil, nil
		}
		cmd := exec.Command("xz", "-1", "-c", "-T1", "--check=crc64")
		cmd.Stdin = bytes.NewReader(data)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("xz: %v: %s", err, e.String())
		}
		return o.Bytes(), nil
	}
	// As delta_generator keeps the smallest encoding, chunks xz would not shrink (random APK data) stay
	// REPLACE: a quick zstd pass tells which (xz on incompressible data crawls at ~1.5 MB/s here).
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	choose := func(part string, i int, data []byte) payload.OpType {
		if part == "vbmeta" || len(enc.EncodeAll(data, nil)) > len(data)*9/10 {
			return payload.OpReplace
		}
		return payload.OpReplaceXZ
	}
	zf, err := os.Create(out)
	if err != nil {
		return err
	}
	defer zf.Close()
	zw := zip.NewWriter(zf)
	add := func(name string, method uint16) (io.Writer, error) {
		return zw.CreateHeader(&zip.FileHeader{Name: name, Method: method, Modified: sample.Epoch})
	}
	pw, err := add("payload.bin", zip.Store)
	if err != nil {
		return err
	}
	cw := &benchgen.Counter{W: pw}
	t0 := time.Now()
	err = payload.Write(ctx, cw, wps, payload.WriteOptions{OpSize: 2 << 20, MaxTimestamp: sample.Epoch.Unix(), TempDir: work, Compress: xzC, Choose: choose,
		Dynamic: &payload.DynamicPartitionMetadata{Groups: []payload.DynamicPartitionGroup{{Name: "qti_dynamic_partitions", Size: 9122611200, Partitions: names}}, SnapshotEnabled: true}})
	if err != nil {
		return err
	}
	fmt.Printf("genrom: payload.bin %d MiB (%.0fs)\n", cw.N>>20, time.Since(t0).Seconds())
	w, err := add("payload_properties.txt", zip.Deflate)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "FILE_SIZE=%d\n", cw.N)
	if w, err = add("META-INF/com/android/metadata", zip.Store); err != nil {
		return err
	}
	fmt.Fprintf(w, "ota-type=AB\npost-build=POCO/%s/%s:14/UKQ1/1700000000:user/release-keys\npost-timestamp=1700000000\npre-device=%s\n", device, device, device)
	return zw.Close()
}
