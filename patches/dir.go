package patches

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/internal/failure"
)

// partitionNames are the directory names treated as partitions in an extracted ROM.
var partitionNames = []string{"system", "system_ext", "product", "vendor", "odm", "vendor_dlkm", "odm_dlkm", "oem"}

// DirTarget is an extracted ROM on disk: either one partition's tree, or a folder holding one folder per
// partition. fs_config/file_contexts files beside a partition folder (PART.fs_config, PART.file_contexts,
// as `romforge fs extract` writes them) supply owners, modes and labels.
type DirTarget struct {
	Root  string
	Parts map[string]string // partition → host directory
}

// OpenDir inspects dir. single names the partition when dir is one partition's tree ("" guesses
// "system" when build.prop is at its top).
func OpenDir(dir, single string) (*DirTarget, map[string]tree.Tree, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, nil, err
	}
	if !st.IsDir() {
		return nil, nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("patches: %s is not a directory", dir))
	}
	dt := &DirTarget{Root: dir, Parts: map[string]string{}}
	if single == "" {
		for _, p := range partitionNames {
			if fi, err := os.Stat(filepath.Join(dir, p)); err == nil && fi.IsDir() {
				dt.Parts[p] = filepath.Join(dir, p)
			}
		}
		if len(dt.Parts) == 0 {
			single = "system"
		}
	}
	if single != "" {
		dt.Parts = map[string]string{single: dir}
	}
	trees := map[string]tree.Tree{}
	for part, host := range dt.Parts {
		opt := tree.DirOptions{MountPoint: "/" + part}
		if b, err := os.ReadFile(host + ".fs_config"); err == nil {
			cfg, err := tree.ParseFSConfig(strings.NewReader(string(b)))
			if err != nil {
				return nil, nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("%s.fs_config: %w", host, err))
			}
			opt.FSConfig = cfg
			opt.Prefix = fsConfigPrefix(cfg, part)
		}
		if b, err := os.ReadFile(host + ".file_contexts"); err == nil {
			fc, err := tree.ParseFileContexts(strings.NewReader(string(b)))
			if err != nil {
				return nil, nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("%s.file_contexts: %w", host, err))
			}
			opt.FileContexts = fc
		}
		d, err := tree.NewDir(host, opt)
		if err != nil {
			return nil, nil, err
		}
		trees[part] = d
	}
	return dt, trees, nil
}

// fsConfigPrefix guesses whether an fs_config file names paths with the partition prefix.
func fsConfigPrefix(cfg tree.FSConfig, part string) string {
	for p := range cfg {
		if p == part || strings.HasPrefix(p, part+"/") {
			return part
		}
	}
	return ""
}

// Commit writes the overlays' changes back into the directories, refusing anything that would leave a
// partition folder (through "..", or through a symlink), and rewrites fs_config/file_contexts beside it.
func (dt *DirTarget) Commit(t *Target) error {
	for part, host := range dt.Parts {
		o := t.Overlay(part)
		if o == nil {
			continue
		}
		for _, c := range o.Changes() {
			if err := commitOne(o, host, c); err != nil {
				return fmt.Errorf("patches: writing %s/%s: %w", part, c.Path, err)
			}
		}
		if _, err := os.Stat(host + ".fs_config"); err == nil {
			if err := writeSide(host+".fs_config", func(w io.Writer) error {
				cfg, _ := tree.ParseFSConfig(strings.NewReader(readOr(host + ".fs_config")))
				return tree.WriteFSConfig(w, o, fsConfigPrefix(cfg, part))
			}); err != nil {
				return err
			}
		}
		if _, err := os.Stat(host + ".file_contexts"); err == nil {
			if err := writeSide(host+".file_contexts", func(w io.Writer) error { return tree.WriteFileContexts(w, o, "/"+part) }); err != nil {
				return err
			}
		}
	}
	return nil
}

func readOr(p string) string { b, _ := os.ReadFile(p); return string(b) }

func writeSide(p string, fn func(io.Writer) error) error {
	tmp := p + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// safeHostPath maps an overlay name to a host path, refusing symlinked parents.
func safeHostPath(root, name string) (string, error) {
	if name == "." {
		return root, nil
	}
	p := root
	parts := strings.Split(name, "/")
	for i, el := range parts {
		if el == ".." || el == "" {
			return "", tree.ErrEscape
		}
		p = filepath.Join(p, el)
		if i < len(parts)-1 {
			if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
				return "", fmt.Errorf("%s is a symlink: %w", p, tree.ErrEscape)
			}
		}
	}
	return p, nil
}

func commitOne(o *tree.Overlay, root string, c tree.Change) error {
	host, err := safeHostPath(root, c.Path)
	if err != nil {
		return err
	}
	switch c.Kind {
	case tree.Removed:
		if o.Exists(c.Path) {
			return nil // put back later in the same run; the later change writes it
		}
		return os.RemoveAll(host)
	case tree.Added, tree.Replaced, tree.MetaSet:
		m, err := o.Meta(c.Path)
		if err != nil {
			return nil // removed again later
		}
		switch {
		case m.Mode.IsDir():
			if err := os.MkdirAll(host, m.Mode.Perm()); err != nil {
				return err
			}
		case m.Mode&fs.ModeSymlink != 0:
			os.Remove(host)
			if err := os.Symlink(m.Target, host); err != nil {
				return err
			}
		case m.Mode.IsRegular():
			if c.Kind != tree.MetaSet {
				f, err := o.Open(c.Path)
				if err != nil {
					return err
				}
				data, err := io.ReadAll(f)
				f.Close()
				if err != nil {
					return err
				}
				if fi, err := os.Lstat(host); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
					os.Remove(host) // never write through a symlink
				}
				tmp := host + ".romforge-tmp"
				if err := os.WriteFile(tmp, data, m.Mode.Perm()); err != nil {
					return err
				}
				if err := os.Rename(tmp, host); err != nil {
					return err
				}
			}
			if err := os.Chmod(host, m.Mode.Perm()); err != nil {
				return err
			}
		}
		if os.Geteuid() == 0 {
			os.Lchown(host, int(m.UID), int(m.GID))
		}
	}
	return nil
}
