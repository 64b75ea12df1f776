package rom

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/romforge/romforge/fs/erofs"
	"github.com/romforge/romforge/fs/ext4"
	"github.com/romforge/romforge/image/avb"
	"github.com/romforge/romforge/image/bootimg"
	"github.com/romforge/romforge/image/lp"
	"github.com/romforge/romforge/image/payload"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/rom/xiaomi"
)

// Kind names what an input is.
type Kind string

const (
	KindABPayloadZip      Kind = "ab-payload-zip"
	KindPayloadBin        Kind = "payload-bin"
	KindBlockOTAZip       Kind = "block-ota-zip"
	KindFileOTAZip        Kind = "file-ota-zip"
	KindXiaomiFastbootTGZ Kind = "xiaomi-fastboot-tgz"
	KindXiaomiFastbootDir Kind = "xiaomi-fastboot-dir"
	KindFastbootUpdateZip Kind = "fastboot-update-zip"
	KindSuper             Kind = "super"
	KindSparse            Kind = "sparse"
	KindBoot              Kind = "boot"
	KindVendorBoot        Kind = "vendor-boot"
	KindVbmeta            Kind = "vbmeta"
	KindExt4              Kind = "ext4"
	KindErofs             Kind = "erofs"
	KindZip               Kind = "zip" // a zip that is none of the ROM kinds
	KindUnknown           Kind = "unknown"
)

// Input is what Detect found.
type Input struct {
	Path  string `json:"path"`
	Kind  Kind   `json:"kind"`
	Size  int64  `json:"size"`
	IsDir bool   `json:"is_dir,omitempty"`
	// Inner is the kind of a sparse image's expanded contents (e.g. super, ext4).
	Inner Kind `json:"inner,omitempty"`
	// OTAMetadata is META-INF/com/android/metadata of an OTA zip.
	OTAMetadata *OTAMetadata `json:"ota_metadata,omitempty"`
	// AndroidInfo is android-info.txt of a fastboot update zip.
	AndroidInfo *AndroidInfo `json:"android_info,omitempty"`
	// Partitions a container holds: transfer.list names of a block OTA, images of a fastboot zip.
	Partitions []string `json:"partitions,omitempty"`
	// PayloadOffset and PayloadSize locate payload.bin inside an A/B zip (stored uncompressed, so it can
	// be read in place); PayloadProperties is payload_properties.txt.
	PayloadOffset     int64             `json:"payload_offset,omitempty"`
	PayloadSize       int64             `json:"payload_size,omitempty"`
	PayloadProperties map[string]string `json:"payload_properties,omitempty"`
	// Devices a file or block OTA's updater-script asserts.
	Devices []string `json:"devices,omitempty"`
}

// Zip local-file and empty-archive signatures.
var (
	magicZip      = []byte("PK\x03\x04")
	magicZipEmpty = []byte("PK\x05\x06")
)

// Classify names a raw image by the magic numbers in its first 8 KiB. It is the one place that orders the
// formats' own predicates (each format package exports its IsX), so every command agrees on what an
// image is.
func Classify(head []byte) Kind {
	switch {
	case payload.IsPayload(head):
		return KindPayloadBin
	case sparse.HasMagic(head):
		return KindSparse
	case bootimg.IsBoot(head):
		return KindBoot
	case bootimg.IsVendorBoot(head):
		return KindVendorBoot
	case avb.IsVBMeta(head):
		return KindVbmeta
	case lp.IsSuper(head):
		return KindSuper
	case erofs.IsEROFS(head):
		return KindErofs
	case ext4.IsExt4(head):
		return KindExt4
	}
	return KindUnknown
}

// probeLimit bounds how much of a tarball Detect decompresses.
const probeLimit = 256 << 20

// Detect says what the file or directory at p is, reading only headers and small entries.
func Detect(p string) (*Input, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	in := &Input{Path: p, Size: st.Size(), Kind: KindUnknown}
	if st.IsDir() {
		in.IsDir, in.Size = true, 0
		if xiaomiDir(p) {
			in.Kind = KindXiaomiFastbootDir
		}
		return in, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, 8192)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("rom: reading %s: %w", p, err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, magicZip) || bytes.HasPrefix(head, magicZipEmpty):
		return in, detectZip(in, f)
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b, len(head) >= 262 && string(head[257:262]) == "ustar":
		if xiaomi.Probe(f, probeLimit) {
			in.Kind = KindXiaomiFastbootTGZ
		}
		return in, nil
	}
	in.Kind = Classify(head)
	if in.Kind == KindSparse {
		if img, err := sparse.NewReader(f, st.Size()); err == nil {
			inner := make([]byte, 8192)
			m, _ := img.ReadAt(inner, 0)
			in.Inner = Classify(inner[:m])
		}
	}
	return in, nil
}

func xiaomiDir(p string) bool {
	if m, _ := filepath.Glob(filepath.Join(p, "flash_all*.sh")); len(m) > 0 {
		return true
	}
	if m, _ := filepath.Glob(filepath.Join(p, "flash_all*.bat")); len(m) > 0 {
		return true
	}
	return false
}

// readEntry reads a small zip entry.
func readEntry(f *zip.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", f.Name, limit)
	}
	return b, nil
}

func detectZip(in *Input, f *os.File) error {
	zr, err := zip.NewReader(f, in.Size)
	if err != nil {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: %s looks like a zip but is not readable (truncated download?): %w", in.Path, err))
	}
	byName := map[string]*zip.File{}
	hasSystem := false
	var tlists []string
	newData := false
	for _, e := range zr.File {
		byName[e.Name] = e
		switch {
		case strings.HasPrefix(e.Name, "system/") && !strings.HasSuffix(e.Name, "/"):
			hasSystem = true
		case strings.HasSuffix(e.Name, ".transfer.list") && !strings.Contains(e.Name, "/"):
			tlists = append(tlists, strings.TrimSuffix(e.Name, ".transfer.list"))
		case strings.Contains(e.Name, ".new.dat") && !strings.Contains(e.Name, "/"):
			newData = true
		}
	}
	if e, ok := byName[MetadataPath]; ok {
		b, err := readEntry(e, maxTextFile)
		if err != nil {
			return failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: %s: %w", MetadataPath, err))
		}
		if in.OTAMetadata, err = ParseOTAMetadata(bytes.NewReader(b)); err != nil {
			return err
		}
	}
	_, hasScript := byName[UpdaterScriptPath]
	switch pb, ok := byName["payload.bin"]; {
	case ok:
		in.Kind = KindABPayloadZip
		if pb.Method != zip.Store {
			return failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: %s: payload.bin is compressed in the zip (method %d); A/B OTAs store it uncompressed", in.Path, pb.Method))
		}
		off, err := pb.DataOffset()
		if err != nil {
			return failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: %s: payload.bin: %w", in.Path, err))
		}
		in.PayloadOffset, in.PayloadSize = off, int64(pb.UncompressedSize64)
		if off < 0 || in.PayloadSize < 0 || off > in.Size || in.PayloadSize > in.Size-off {
			return failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: %s: payload.bin extends beyond the file (truncated download?)", in.Path))
		}
		if pp, ok := byName["payload_properties.txt"]; ok {
			if b, err := readEntry(pp, maxTextFile); err == nil {
				in.PayloadProperties = map[string]string{}
				for _, ln := range strings.Split(string(b), "\n") {
					if k, v, ok := strings.Cut(strings.TrimSpace(ln), "="); ok {
						in.PayloadProperties[k] = v
					}
				}
			}
		}
	case len(tlists) > 0 && newData:
		in.Kind = KindBlockOTAZip
		sort.Strings(tlists)
		in.Partitions = tlists
	case hasSystem:
		// Without its updater-script it is still a file OTA, a broken one: FileOTATree says what is missing
		// rather than the input passing as an unknown zip.
		in.Kind = KindFileOTAZip
		in.Partitions = []string{"system"}
	case byName["android-info.txt"] != nil:
		in.Kind = KindFastbootUpdateZip
		b, err := readEntry(byName["android-info.txt"], maxTextFile)
		if err != nil {
			return failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: android-info.txt: %w", err))
		}
		if in.AndroidInfo, err = ParseAndroidInfo(bytes.NewReader(b)); err != nil {
			return err
		}
		for _, e := range zr.File {
			if !strings.Contains(e.Name, "/") && strings.HasSuffix(e.Name, ".img") {
				in.Partitions = append(in.Partitions, strings.TrimSuffix(path.Base(e.Name), ".img"))
			}
		}
	default:
		in.Kind = KindZip
	}
	if hasScript && (in.Kind == KindBlockOTAZip || in.Kind == KindFileOTAZip) {
		if sc, err := ReadUpdaterScript(zr); err == nil {
			in.Devices = sc.Devices
		}
	}
	return nil
}
