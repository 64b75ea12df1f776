// Package fsimage opens a partition image holding ext4 or EROFS (raw or Android sparse) as a tree.Tree,
// and rebuilds a changed tree into a new image formatted like the source: same filesystem, size,
// features, UUID, hash seed and mount point, unless asked otherwise. The patch command and the build
// pipeline use it so an image is patched through an overlay without ever being extracted.
package fsimage

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/romforge/romforge/fs/erofs"
	"github.com/romforge/romforge/fs/ext4"
	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/progress"
)

// Image is an opened filesystem image.
type Image struct {
	tree.Tree
	// Kind is "ext4" or "erofs".
	Kind string
	// Raw is the expanded image.
	Raw   image.Image
	Ext4  *ext4.FS
	EROFS *erofs.FS
	// Sparse says the file was an Android sparse image.
	Sparse bool
	closer io.Closer
}

// Close releases the file.
func (i *Image) Close() error {
	if i.closer == nil {
		return nil
	}
	return i.closer.Close()
}

// ErrNotFilesystem reports an image that is neither ext4 nor EROFS.
var ErrNotFilesystem = failure.Kinded(failure.ErrInvalid, errors.New("neither ext4 nor EROFS"))

// Detect names the filesystem in the first 2 KiB of an image ("" when unknown).
func Detect(head []byte) string {
	switch {
	case ext4.IsExt4(head):
		return "ext4"
	case erofs.IsEROFS(head):
		return "erofs"
	}
	return ""
}

// Open opens a raw or sparse image file.
func Open(path string) (*Image, error) {
	img, closer, err := sparse.Open(path)
	if err != nil {
		return nil, err
	}
	i, err := OpenImage(img)
	if err != nil {
		closer.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	_, i.Sparse = img.(*sparse.Image)
	i.closer = closer
	return i, nil
}

// OpenImage opens an already expanded image.
func OpenImage(img image.Image) (*Image, error) {
	head := make([]byte, 2048)
	n, _ := img.ReadAt(head, 0)
	i := &Image{Raw: img, Kind: Detect(head[:n])}
	var err error
	switch i.Kind {
	case "ext4":
		i.Ext4, err = ext4.Open(img)
		i.Tree = i.Ext4
	case "erofs":
		i.EROFS, err = erofs.Open(img)
		i.Tree = i.EROFS
	default:
		return nil, ErrNotFilesystem
	}
	if err != nil {
		return nil, err
	}
	return i, nil
}

// MountPoint is where the image says it is mounted ("" when it does not say).
func (i *Image) MountPoint() string {
	if i.Ext4 != nil {
		return i.Ext4.Info().LastMounted
	}
	return ""
}

// Info returns the filesystem's superblock summary.
func (i *Image) Info() any {
	if i.Ext4 != nil {
		return i.Ext4.Info()
	}
	return i.EROFS.Info()
}

// RebuildOptions change what Rebuild copies from the source.
type RebuildOptions struct {
	// Kind converts to another filesystem ("" keeps the source's).
	Kind string
	// Size of the new filesystem (0: the source's size for ext4; EROFS is always as small as it can be).
	Size int64
	// Shrink makes ext4 as small as the tree allows plus Margin.
	Shrink bool
	Margin int64
	// Compression for EROFS ("" keeps lz4hc when the source is compressed).
	Compression string
	// Timestamp of every inode (zero: SOURCE_DATE_EPOCH, else the epoch).
	Timestamp time.Time
	Workers   int
	Progress  progress.Reporter
}

func parseHex16(s string) [16]byte {
	var out [16]byte
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err == nil && len(b) == 16 {
		copy(out[:], b)
	}
	return out
}

// Rebuild writes t as a new image formatted like src and returns the bytes used.
func Rebuild(ctx context.Context, w io.WriterAt, src *Image, t tree.Tree, opt RebuildOptions) (int64, error) {
	kind := opt.Kind
	if kind == "" || kind == "keep" {
		kind = src.Kind
	}
	switch kind {
	case "ext4":
		wo := ext4.WriteOptions{Size: opt.Size, Shrink: opt.Shrink, Margin: opt.Margin, Timestamp: opt.Timestamp, Workers: opt.Workers, Progress: opt.Progress}
		if src.Ext4 != nil {
			info := src.Ext4.Info()
			has := func(f string) bool { return slices.Contains(info.Features, f) }
			wo.Profile = "legacy"
			if has("flex_bg") || has("64bit") || has("metadata_csum") {
				wo.Profile = "modern"
			}
			wo.Journal, wo.ReadOnly, wo.MetadataCsum = has("has_journal"), has("read-only"), has("metadata_csum")
			wo.UUID, wo.HashSeed = parseHex16(info.UUID), parseHex16(info.HashSeed)
			wo.VolumeName, wo.MountPoint = info.VolumeName, info.LastMounted
			wo.BlockSize, wo.InodeSize = int(info.BlockSize), int(info.InodeSize)
			if wo.Size == 0 && !wo.Shrink {
				wo.Size = info.FilesystemSize
			}
		} else if wo.Size == 0 && !wo.Shrink {
			wo.Shrink, wo.Margin = true, max(opt.Margin, 16<<20)
		}
		res, err := ext4.Write(ctx, w, t, wo)
		if err != nil {
			return 0, err
		}
		return res.Size, nil
	case "erofs":
		wo := erofs.WriteOptions{Compression: opt.Compression, Timestamp: opt.Timestamp, Workers: opt.Workers, Progress: opt.Progress}
		if src.EROFS != nil {
			// Files the patch left alone keep their clusters: no second lz4hc pass over a whole system.
			wo.ReuseStored = true
			info := src.EROFS.Info()
			wo.UUID, wo.VolumeName = parseHex16(info.UUID), info.VolumeName
			if wo.Compression == "" && len(info.Compression) > 0 {
				wo.Compression = "lz4hc"
			}
		}
		res, err := erofs.Write(ctx, w, t, wo)
		if err != nil {
			return 0, err
		}
		if opt.Size > 0 && res.Size > opt.Size {
			return 0, failure.Kinded(failure.ErrInvalid, fmt.Errorf("fsimage: the EROFS image is %d bytes, more than the %d-byte partition", res.Size, opt.Size))
		}
		return res.Size, nil
	}
	return 0, failure.Kinded(failure.ErrUsage, fmt.Errorf("fsimage: unknown filesystem %q (ext4 or erofs)", kind))
}
