package main

import (
	"fmt"
	"os"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/patches"
)

// patchTarget is what `patch` and `audit` work on: partition trees, and how to write changes back.
type patchTarget struct {
	trees   map[string]tree.Tree
	image   bool
	dir     *patches.DirTarget
	closers []func() error
	// writeImage rebuilds a patched image from its overlay (set for image targets).
	writeImage func(e *env, o *tree.Overlay, out string) error
}

func (t *patchTarget) close() {
	for _, c := range t.closers {
		c()
	}
}

func (t *patchTarget) commit(e *env, target *patches.Target, out string) error {
	if t.dir != nil {
		if out != "" {
			return usagef("patch: -o is for images; directories are patched in place")
		}
		return t.dir.Commit(target)
	}
	for _, p := range target.Partitions() {
		return t.writeImage(e, target.Overlay(p), out)
	}
	return nil
}

// openPatchTarget opens a directory (one partition, or one folder per partition) or a filesystem image.
func openPatchTarget(path, partition string) (*patchTarget, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		dt, trees, err := patches.OpenDir(path, partition)
		if err != nil {
			return nil, err
		}
		return &patchTarget{trees: trees, dir: dt}, nil
	}
	if openImageTarget != nil {
		return openImageTarget(path, partition)
	}
	return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("%s: image targets need the filesystem readers, which this build lacks", path))
}

// openImageTarget is set once filesystem image support is wired in (cmd_fs integration).
var openImageTarget func(path, partition string) (*patchTarget, error)
