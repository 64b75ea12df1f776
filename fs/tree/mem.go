package tree

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"time"
)

// Mem is an in-memory Tree, for small trees, tests and the changed part of an Overlay.
// The root directory exists from the start with mode 0755.
type Mem struct {
	entries map[string]*memEntry
}

type memEntry struct {
	meta Meta
	data []byte
}

// NewMem returns an empty tree holding only the root directory.
func NewMem() *Mem {
	return &Mem{entries: map[string]*memEntry{".": {meta: Meta{Mode: fs.ModeDir | 0o755}}}}
}

// Put adds or replaces name (an io/fs name or a user path). The parent directory must exist.
// For regular files m.Size is set from data; for symlinks m.Target must be set.
func (t *Mem) Put(name string, m Meta, data []byte) error {
	c, err := Clean(name)
	if err != nil {
		return err
	}
	if c != "." {
		p, ok := t.entries[path.Dir(c)]
		if !ok || !p.meta.Mode.IsDir() {
			return &fs.PathError{Op: "put", Path: c, Err: fmt.Errorf("parent directory missing: %w", fs.ErrNotExist)}
		}
	}
	if m.Mode.IsRegular() {
		m.Size = int64(len(data))
	} else {
		data = nil
		m.Size = 0
	}
	t.entries[c] = &memEntry{meta: m, data: data}
	return nil
}

// MkdirAll creates name and its missing parents with m (ModeDir is added).
func (t *Mem) MkdirAll(name string, m Meta) error {
	c, err := Clean(name)
	if err != nil {
		return err
	}
	if c == "." {
		return nil
	}
	if err := t.MkdirAll(path.Dir(c), m); err != nil {
		return err
	}
	if e, ok := t.entries[c]; ok {
		if !e.meta.Mode.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: c, Err: fs.ErrExist}
		}
		return nil
	}
	m.Mode |= fs.ModeDir
	return t.Put(c, m, nil)
}

// Meta implements Tree.
func (t *Mem) Meta(name string) (Meta, error) {
	e, ok := t.entries[name]
	if !ok {
		return Meta{}, &fs.PathError{Op: "meta", Path: name, Err: fs.ErrNotExist}
	}
	return e.meta, nil
}

// Open implements fs.FS.
func (t *Mem) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	e, ok := t.entries[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	info := NewFileInfo(path.Base(name), e.meta)
	if e.meta.Mode.IsDir() {
		ents, err := t.ReadDir(name)
		if err != nil {
			return nil, err
		}
		return NewDirFile(info, ents), nil
	}
	return &memFile{info: info, r: bytes.NewReader(e.data)}, nil
}

// ReadDir implements fs.ReadDirFS.
func (t *Mem) ReadDir(name string) ([]fs.DirEntry, error) {
	e, ok := t.entries[name]
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	if !e.meta.Mode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fmt.Errorf("not a directory")}
	}
	var out []fs.DirEntry
	for p, c := range t.entries {
		if p != "." && path.Dir(p) == name {
			out = append(out, fs.FileInfoToDirEntry(NewFileInfo(path.Base(p), c.meta)))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// ReadFile implements fs.ReadFileFS.
func (t *Mem) ReadFile(name string) ([]byte, error) {
	e, ok := t.entries[name]
	if !ok || !e.meta.Mode.IsRegular() {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: fs.ErrNotExist}
	}
	return bytes.Clone(e.data), nil
}

// FileInfo is an fs.FileInfo built from Meta; Sys returns the Meta.
type FileInfo struct {
	name string
	meta Meta
}

// NewFileInfo returns the fs.FileInfo of an entry called name with metadata m.
func NewFileInfo(name string, m Meta) FileInfo { return FileInfo{name: name, meta: m} }

func (fi FileInfo) Name() string       { return fi.name }
func (fi FileInfo) Size() int64        { return fi.meta.Size }
func (fi FileInfo) Mode() fs.FileMode  { return fi.meta.Mode }
func (fi FileInfo) ModTime() time.Time { return fi.meta.ModTime }
func (fi FileInfo) IsDir() bool        { return fi.meta.Mode.IsDir() }
func (fi FileInfo) Sys() any           { return fi.meta }

type memFile struct {
	info FileInfo
	r    *bytes.Reader
}

func (f *memFile) Stat() (fs.FileInfo, error)              { return f.info, nil }
func (f *memFile) Read(p []byte) (int, error)              { return f.r.Read(p) }
func (f *memFile) ReadAt(p []byte, off int64) (int, error) { return f.r.ReadAt(p, off) }
func (f *memFile) Seek(off int64, whence int) (int64, error) {
	return f.r.Seek(off, whence)
}
func (f *memFile) Close() error { return nil }

// DirFile is an open directory whose entries are known up front; tree implementations return it from Open.
type DirFile struct {
	info fs.FileInfo
	ents []fs.DirEntry
	pos  int
}

// NewDirFile returns an fs.ReadDirFile listing ents.
func NewDirFile(info fs.FileInfo, ents []fs.DirEntry) *DirFile {
	return &DirFile{info: info, ents: ents}
}

func (d *DirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *DirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.Name(), Err: fmt.Errorf("is a directory")}
}
func (d *DirFile) Close() error { return nil }

// ReadDir implements fs.ReadDirFile.
func (d *DirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.ents[d.pos:]
	if n <= 0 {
		d.pos = len(d.ents)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.pos += n
	return rest[:n], nil
}
