package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/lp"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/internal/safeio"
	"github.com/romforge/romforge/pipeline"
	"github.com/romforge/romforge/progress"
	"github.com/romforge/romforge/rom"
)

func init() {
	unpackers = append(unpackers,
		unpacker{kind: "super", match: func(in *unpackInput) bool {
			return !in.dir && (rom.Classify(in.head) == rom.KindSuper || sparseSuper(in))
		}, unpack: unpackSuper},
		unpacker{kind: "rom", match: func(in *unpackInput) bool {
			r, err := pipeline.Open(in.path, nil)
			if err != nil {
				// A ROM with a problem is still a ROM: unpackROM then reports which entry and rule failed.
				return isROMKind(in.path)
			}
			r.Close()
			return true
		}, unpack: unpackROM},
		unpacker{kind: "sparse", match: func(in *unpackInput) bool { return !in.dir && rom.Classify(in.head) == rom.KindSparse }, unpack: unpackSparse},
	)
}

func sparseSuper(in *unpackInput) bool {
	if rom.Classify(in.head) != rom.KindSparse {
		return false
	}
	img, c, err := sparse.Open(in.path)
	if err != nil {
		return false
	}
	defer c.Close()
	b := make([]byte, 4100)
	n, _ := img.ReadAt(b, 0)
	return rom.Classify(b[:n]) == rom.KindSuper
}

func wanted(opt unpackOptions, name string) bool {
	if len(opt.partitions) == 0 {
		return true
	}
	for _, p := range opt.partitions {
		if p == name {
			return true
		}
	}
	return false
}

// writeImage copies img to dir/name.img under a temporary name and renames it when complete.
func writeImageFile(ctx context.Context, e *env, dir, name string, img image.Image) (unpackedImage, error) {
	final := filepath.Join(dir, name+".img")
	f, err := safeio.Create(final)
	if err != nil {
		return unpackedImage{}, err
	}
	defer f.Abort()
	h := sha256.New()
	task := e.reporter().Task("unpack "+name, img.Size())
	_, err = safeio.CopyContext(ctx, io.MultiWriter(f, h), progress.Reader(io.NewSectionReader(img, 0, img.Size()), task))
	if err == nil {
		err = f.Commit()
	}
	task.Done(err)
	if err != nil {
		return unpackedImage{}, err
	}
	return unpackedImage{Name: name, File: final, Size: img.Size(), SHA256: hex.EncodeToString(h.Sum(nil)), Verified: true}, nil
}

// unpackSuper writes every logical partition of slot 0 (its extents, no copy through a temp super).
func unpackSuper(e *env, in *unpackInput, opt unpackOptions) (*unpackResult, error) {
	img, c, err := sparse.Open(in.path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	s, err := lp.NewReader(img, img.Size())
	if err != nil {
		return nil, err
	}
	md, err := s.Metadata(0)
	if err != nil {
		return nil, err
	}
	res := &unpackResult{Details: s.Info()}
	for _, p := range md.Partitions {
		if !wanted(opt, p.Name) {
			continue
		}
		pi, err := s.Partition(0, p.Name)
		if err != nil {
			return nil, err
		}
		if pi.Size() == 0 {
			continue
		}
		u, err := writeImageFile(e.ctx, e, opt.out, p.Name, pi)
		if err != nil {
			return nil, err
		}
		res.Partitions = append(res.Partitions, u)
	}
	return res, nil
}

// unpackROM handles block OTA, file OTA and Xiaomi fastboot ROMs and folders of images.
func unpackROM(e *env, in *unpackInput, opt unpackOptions) (*unpackResult, error) {
	r, err := pipeline.Open(in.path, nil)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	res := &unpackResult{Metadata: r.Metadata(), Details: map[string]any{"kind": r.Kind(), "anti_version": r.AntiVersion()}}
	for _, p := range r.Partitions() {
		if !wanted(opt, p) {
			continue
		}
		final := filepath.Join(opt.out, p+".img")
		if err := r.Extract(e.ctx, p, final+".part"); err != nil {
			os.Remove(final + ".part")
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if err := os.Rename(final+".part", final); err != nil {
			return nil, err
		}
		f, err := image.OpenFile(final)
		if err != nil {
			return nil, err
		}
		sum, err := image.SHA256(e.ctx, f)
		size := f.Size()
		f.Close()
		if err != nil {
			return nil, err
		}
		res.Partitions = append(res.Partitions, unpackedImage{Name: p, File: final, Size: size, SHA256: sum, Verified: true})
	}
	return res, nil
}

// unpackSparse expands one sparse image, named after its file.
func unpackSparse(e *env, in *unpackInput, opt unpackOptions) (*unpackResult, error) {
	img, c, err := sparse.Open(in.path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	name := strings.SplitN(filepath.Base(in.path), ".", 2)[0]
	u, err := writeImageFile(e.ctx, e, opt.out, name, img)
	if err != nil {
		return nil, err
	}
	return &unpackResult{Partitions: []unpackedImage{u}}, nil
}
