package tree

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/romforge/romforge/internal/failure"
)

// DirOptions says where a directory tree's Android metadata comes from.
type DirOptions struct {
	// FSConfig overrides owners, modes and capabilities per path (paths as in the file, e.g.
	// "system/bin/sh" when Prefix is "system").
	FSConfig FSConfig
	// FileContexts assigns SELinux labels by absolute path (MountPoint + name).
	FileContexts *FileContexts
	// Prefix is what fs_config paths start with for this tree ("system", "vendor"; "" for none).
	Prefix string
	// MountPoint is where the tree is mounted on the device ("/system"), for file_contexts look-ups.
	MountPoint string
}

// Dir is a Tree over a host directory. Owners, modes and xattrs come from the host (on Unix), overridden
// by fs_config and file_contexts when given, so an unprivileged user can describe a root-owned tree.
type Dir struct {
	root string
	fsys fs.FS
	opt  DirOptions
}

// NewDir returns a Tree over the directory root.
func NewDir(root string, opt DirOptions) (*Dir, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", root)
	}
	return &Dir{root: root, fsys: os.DirFS(root), opt: opt}, nil
}

// Root returns the host directory.
func (d *Dir) Root() string { return d.root }

// Open implements fs.FS. Symlinks are not followed out of the tree: opening one fails.
func (d *Dir) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if err := d.noSymlinkParents(name); err != nil {
		return nil, err
	}
	return d.fsys.Open(name)
}

// ReadDir implements fs.ReadDirFS.
func (d *Dir) ReadDir(name string) ([]fs.DirEntry, error) {
	if err := d.noSymlinkParents(name); err != nil {
		return nil, err
	}
	return fs.ReadDir(d.fsys, name)
}

func (d *Dir) noSymlinkParents(name string) error {
	if name == "." {
		return nil
	}
	p := d.root
	for _, el := range strings.Split(name, "/") {
		p = filepath.Join(p, el)
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("through a symlink: %w", ErrEscape)}
		}
	}
	return nil
}

// Meta implements Tree.
func (d *Dir) Meta(name string) (Meta, error) {
	if !fs.ValidPath(name) {
		return Meta{}, &fs.PathError{Op: "meta", Path: name, Err: fs.ErrInvalid}
	}
	if err := d.noSymlinkParents(path.Dir(name)); err != nil {
		return Meta{}, err
	}
	host := filepath.Join(d.root, filepath.FromSlash(name))
	st, err := os.Lstat(host)
	if err != nil {
		return Meta{}, err
	}
	m := Meta{Mode: st.Mode(), ModTime: st.ModTime()}
	if st.Mode().IsRegular() {
		m.Size = st.Size()
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		if m.Target, err = os.Readlink(host); err != nil {
			return Meta{}, err
		}
	}
	if err := hostMeta(host, st, &m); err != nil {
		return Meta{}, err
	}
	if e, ok := d.opt.FSConfig[joinPrefix(d.opt.Prefix, name)]; ok {
		m.UID, m.GID = e.UID, e.GID
		m.Mode = m.Mode.Type() | FileMode(e.Mode)&^fs.ModeType
		m.SetCapabilities(e.Capabilities)
		if e.Label != "" {
			m.SetSELinux(e.Label)
		}
	}
	if d.opt.FileContexts != nil {
		if l := d.opt.FileContexts.Lookup(path.Join("/", d.opt.MountPoint, name), m); l != "" {
			m.SetSELinux(l)
		}
	}
	return m, nil
}

// OpenDir is NewDir with its Android metadata read from files, as a user names them: an AOSP fs_config
// file and a SELinux file_contexts file (either path may be ""), for a tree mounted at mountPoint.
func OpenDir(root, fsConfigPath, fileContextsPath, mountPoint string) (*Dir, error) {
	opt := DirOptions{Prefix: strings.Trim(mountPoint, "/"), MountPoint: mountPoint}
	if fsConfigPath != "" {
		f, err := os.Open(fsConfigPath)
		if err != nil {
			return nil, err
		}
		opt.FSConfig, err = ParseFSConfig(f)
		f.Close()
		if err != nil {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("%s: %w", fsConfigPath, err))
		}
	}
	if fileContextsPath != "" {
		f, err := os.Open(fileContextsPath)
		if err != nil {
			return nil, err
		}
		opt.FileContexts, err = ParseFileContexts(f)
		f.Close()
		if err != nil {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("%s: %w", fileContextsPath, err))
		}
	}
	return NewDir(root, opt)
}
