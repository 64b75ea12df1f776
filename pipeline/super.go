package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/romforge/romforge/bundle"
	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/lp"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
	"github.com/romforge/romforge/progress"
)

// SuperSlot is the slot whose logical partitions a built super image holds on A/B devices: a factory
// super has its partitions in _a and empty _b partitions, and the phone boots slot a after flashing.
const SuperSlot = "a"

// packSuper replaces the logical partition images of imgs by one sparse images/super.img laid out with
// the catalog's super geometry (size, metadata size and slots, groups, Virtual A/B). It returns the new
// image list (super in place of the first logical image) and the super's record for the manifest.
func packSuper(ctx context.Context, opt Options, imgs []bundle.Image, dir string, rep progress.Reporter) ([]bundle.Image, *bundle.Super, error) {
	sup := opt.Device.Super
	if sup == nil || sup.Size <= 0 {
		return nil, nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("build: the catalog gives no super size for %s; use --super none", opt.Device.Codename))
	}
	spec := lp.BuildSpec{DeviceSize: sup.Size, MetadataMaxSize: uint32(sup.MetadataSize), MetadataSlots: uint32(sup.MetadataSlots), VirtualAB: sup.VirtualAB}
	defaultGroup := "default"
	for i, g := range sup.Groups {
		spec.Groups = append(spec.Groups, lp.GroupSpec{Name: g.Name, MaximumSize: uint64(g.MaxSize)})
		if i == 0 {
			defaultGroup = g.Name
		}
	}
	var logical, out []bundle.Image
	var files []*image.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	at := -1
	for _, im := range imgs {
		if !im.Logical {
			out = append(out, im)
			continue
		}
		if at < 0 {
			at = len(out)
		}
		f, err := image.OpenFile(filepath.Join(dir, filepath.FromSlash(im.File)))
		if err != nil {
			return nil, nil, err
		}
		files = append(files, f)
		group := defaultGroup
		if cp, ok := opt.Device.Partition(im.Partition); ok && cp.Group != "" {
			group = cp.Group
		}
		spec.Partitions = append(spec.Partitions, lp.PartitionSpec{Name: im.Partition, Group: group, Attributes: lp.AttrReadonly, Image: f})
		logical = append(logical, im)
	}
	if len(logical) == 0 {
		return imgs, nil, nil
	}
	slot := ""
	if opt.Device.AB {
		spec = spec.WithSlotSuffixes()
		slot = SuperSlot
	}
	img, meta, err := lp.Compose(spec)
	if err != nil {
		return nil, nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("build: the logical partitions do not fit %s's super (%d bytes, groups %v): %v", opt.Device.Codename, sup.Size, sup.Groups, err))
	}
	path := filepath.Join(dir, "images", "super.img")
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	// Hash while writing: the super holds every logical partition, reading it back would cost as much again.
	h := newAsyncHash()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	err = sparse.Write(ctx, bw, img, sparse.WriteOptions{HolesDontCare: true, Progress: rep})
	if err == nil {
		err = bw.Flush()
	}
	digest := h.Sum()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("build: writing super.img: %w", err)
	}
	for _, f := range files {
		f.Close()
	}
	files = nil
	rec := &bundle.Super{DeviceSize: sup.Size, MetadataSlots: int(meta.Geometry.MetadataSlotCount), Slot: slot}
	for _, im := range logical {
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(im.File))); err != nil {
			return nil, nil, err
		}
		if slot != "" {
			im.Partition += "_" + slot
		}
		im.File = ""
		rec.Partitions = append(rec.Partitions, im)
		// Where each partition landed, so a user can find it in the image (lpdump shows the same).
		for _, p := range meta.Partitions {
			if p.Name == im.Partition && len(p.Extents) > 0 {
				rec.Extents = append(rec.Extents, fmt.Sprintf("%s: sectors %d+%d", p.Name, p.Extents[0].TargetData, p.Extents[0].NumSectors))
			}
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	sum := hex.EncodeToString(digest)
	superImg := bundle.Image{Partition: "super", File: "images/super.img", Format: "sparse-super", Size: st.Size(), SHA256: sum, Modified: anyModified(logical)}
	out = append(out[:at], append([]bundle.Image{superImg}, out[at:]...)...)
	return out, rec, nil
}

func anyModified(imgs []bundle.Image) bool {
	for _, im := range imgs {
		if im.Modified {
			return true
		}
	}
	return false
}

// superMode checks --super: auto (a super image for dynamic devices) or none (logical partitions
// flashed one by one through fastbootd).
func superMode(v string) (string, error) {
	switch strings.ToLower(v) {
	case "", "auto":
		return "auto", nil
	case "none":
		return "none", nil
	}
	return "", failure.Kinded(failure.ErrUsage, fmt.Errorf("build: --super %q must be auto or none", v))
}

// asyncHash is a SHA-256 writer that hashes on its own goroutine, so hashing a multi-GiB super runs
// beside the scanning and writing instead of after them.
type asyncHash struct {
	c    chan []byte
	done chan []byte
}

func newAsyncHash() *asyncHash {
	a := &asyncHash{c: make(chan []byte, 4), done: make(chan []byte, 1)}
	go func() {
		h := sha256.New()
		for b := range a.c {
			h.Write(b)
		}
		a.done <- h.Sum(nil)
	}()
	return a
}

func (a *asyncHash) Write(p []byte) (int, error) {
	a.c <- bytes.Clone(p)
	return len(p), nil
}

// Sum ends the stream and returns the digest.
func (a *asyncHash) Sum() []byte {
	close(a.c)
	return <-a.done
}

// unpackSuper extracts the logical partitions of a super image into work, named without their slot
// suffix on A/B devices (the _a set; the _b set of a factory super is empty).
func unpackSuper(ctx context.Context, dev *devices.Device, superPath, work string) ([]*part, error) {
	f, err := image.OpenFile(superPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, err := lp.NewReader(f, f.Size())
	if err != nil {
		return nil, err
	}
	m, err := s.Metadata(0)
	if err != nil {
		return nil, err
	}
	var parts []*part
	for _, p := range m.Partitions {
		img, err := s.Partition(0, p.Name)
		if err != nil {
			return nil, err
		}
		name := p.Name
		if dev.AB {
			base, isA := strings.CutSuffix(name, "_a")
			switch {
			case isA:
				name = base
			case strings.HasSuffix(name, "_b"):
				continue // the other slot: empty in a factory super, and not what this build writes
			case img.Size() > 0:
				// Packing it again would put it in slot a under another name: refuse rather than drop it.
				return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("super holds %s without a slot suffix on an A/B device; romforge cannot repack that layout", p.Name))
			}
		}
		if img.Size() == 0 {
			continue
		}
		out := filepath.Join(work, name+".img")
		o, err := os.Create(out)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(o, safeio.ContextReader(ctx, image.Reader(img)))
		if cerr := o.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		parts = append(parts, &part{name: name, work: out, logical: true})
	}
	if len(parts) == 0 {
		return nil, failure.Kinded(failure.ErrInvalid, errors.New("the super image holds no logical partitions for slot a"))
	}
	return parts, nil
}
