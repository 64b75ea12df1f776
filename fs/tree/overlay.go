package tree

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
)

// Overlay presents a base Tree with changes applied: entries removed, files added or replaced, metadata
// changed. The base is never modified (go-containerregistry's mutate, for file trees), so a failed patch
// leaves its input untouched and a writer can stream (base + changes) into a new image without extracting.
// An Overlay is safe for concurrent reads; changes must not race with reads.
type Overlay struct {
	base    Tree
	mu      sync.RWMutex
	put     map[string]*memEntry // added or replaced entries (data nil: content still from base)
	removed map[string]bool      // removed subtrees (names of their roots)
	log     []Change
}

// ChangeKind says what a Change did.
type ChangeKind string

// Change kinds.
const (
	Removed  ChangeKind = "removed"
	Added    ChangeKind = "added"
	Replaced ChangeKind = "replaced"
	MetaSet  ChangeKind = "meta"
)

// Change is one recorded edit, in the order made.
type Change struct {
	Kind ChangeKind `json:"kind"`
	Path string     `json:"path"`
}

// NewOverlay returns an Overlay over base with no changes.
func NewOverlay(base Tree) *Overlay {
	return &Overlay{base: base, put: map[string]*memEntry{}, removed: map[string]bool{}}
}

// Base returns the tree under the overlay.
func (o *Overlay) Base() Tree { return o.base }

// Changes returns the edits made so far.
func (o *Overlay) Changes() []Change {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return append([]Change(nil), o.log...)
}

// hidden reports whether name lies in a removed subtree and was not put back.
func (o *Overlay) hidden(name string) bool {
	for p := name; ; p = path.Dir(p) {
		if o.removed[p] {
			// Something put at or below the removed root after removal is visible again,
			// provided every directory between is put too.
			for q := name; ; q = path.Dir(q) {
				if _, ok := o.put[q]; !ok {
					return true
				}
				if q == p {
					return false
				}
			}
		}
		if p == "." {
			return false
		}
	}
}

func (o *Overlay) lookup(name string) (Meta, *memEntry, bool) {
	if e, ok := o.put[name]; ok {
		return e.meta, e, true
	}
	if o.hidden(name) {
		return Meta{}, nil, false
	}
	m, err := o.base.Meta(name)
	if err != nil {
		return Meta{}, nil, false
	}
	return m, nil, true
}

// Meta implements Tree.
func (o *Overlay) Meta(name string) (Meta, error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	m, _, ok := o.lookup(name)
	if !ok {
		return Meta{}, &fs.PathError{Op: "meta", Path: name, Err: fs.ErrNotExist}
	}
	return m, nil
}

// Exists reports whether name is present.
func (o *Overlay) Exists(name string) bool {
	_, err := o.Meta(name)
	return err == nil
}

// Open implements fs.FS.
func (o *Overlay) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	o.mu.RLock()
	m, e, ok := o.lookup(name)
	o.mu.RUnlock()
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	info := NewFileInfo(path.Base(name), m)
	if m.Mode.IsDir() {
		ents, err := o.ReadDir(name)
		if err != nil {
			return nil, err
		}
		return NewDirFile(info, ents), nil
	}
	if e != nil && e.data != nil || e != nil && !m.Mode.IsRegular() || e != nil && m.Size == 0 {
		mem := &Mem{entries: map[string]*memEntry{name: e}}
		return mem.Open(name)
	}
	f, err := o.base.Open(name)
	if err != nil {
		return nil, err
	}
	if e != nil {
		return &metaFile{File: f, info: info}, nil
	}
	return f, nil
}

// metaFile is a base file whose metadata the overlay changed.
type metaFile struct {
	fs.File
	info fs.FileInfo
}

func (f *metaFile) Stat() (fs.FileInfo, error) { return f.info, nil }

// ReadDir implements fs.ReadDirFS.
func (o *Overlay) ReadDir(name string) ([]fs.DirEntry, error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	m, _, ok := o.lookup(name)
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	if !m.Mode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fmt.Errorf("not a directory")}
	}
	seen := map[string]fs.DirEntry{}
	// Base children under a removed subtree are filtered out by lookup.
	if ents, err := fs.ReadDir(o.base, name); err == nil {
		for _, d := range ents {
			child := path.Join(name, d.Name())
			if cm, _, ok := o.lookup(child); ok {
				seen[d.Name()] = fs.FileInfoToDirEntry(NewFileInfo(d.Name(), cm))
			}
		}
	}
	for p, e := range o.put {
		if p != "." && path.Dir(p) == name {
			seen[path.Base(p)] = fs.FileInfoToDirEntry(NewFileInfo(path.Base(p), e.meta))
		}
	}
	out := make([]fs.DirEntry, 0, len(seen))
	for _, d := range seen {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// Remove deletes name and everything below it. Removing a missing entry is an error wrapping fs.ErrNotExist.
func (o *Overlay) Remove(name string) error {
	c, err := Clean(name)
	if err != nil {
		return err
	}
	if c == "." {
		return fmt.Errorf("tree: refusing to remove the root")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, _, ok := o.lookup(c); !ok {
		return &fs.PathError{Op: "remove", Path: c, Err: fs.ErrNotExist}
	}
	for p := range o.put {
		if p == c || strings.HasPrefix(p, c+"/") {
			delete(o.put, p)
		}
	}
	o.removed[c] = true
	o.log = append(o.log, Change{Kind: Removed, Path: c})
	return nil
}

// Put adds or replaces name with metadata m and, for regular files, contents data. The parent must exist
// and be a directory; neither name nor its parents may be symlinks' targets outside the tree (names are
// never resolved through symlinks).
func (o *Overlay) Put(name string, m Meta, data []byte) error {
	c, err := Clean(name)
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if c != "." {
		pm, _, ok := o.lookup(path.Dir(c))
		if !ok || !pm.Mode.IsDir() {
			return &fs.PathError{Op: "put", Path: c, Err: fmt.Errorf("parent directory missing: %w", fs.ErrNotExist)}
		}
	}
	_, _, existed := o.lookup(c)
	if m.Mode.IsRegular() {
		if data == nil {
			data = []byte{}
		}
		m.Size = int64(len(data))
	} else {
		data, m.Size = nil, 0
	}
	o.put[c] = &memEntry{meta: m, data: data}
	kind := Added
	if existed {
		kind = Replaced
	}
	o.log = append(o.log, Change{Kind: kind, Path: c})
	return nil
}

// SetMeta changes name's metadata, keeping its contents. Type and size cannot change this way.
func (o *Overlay) SetMeta(name string, m Meta) error {
	c, err := Clean(name)
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	old, e, ok := o.lookup(c)
	if !ok {
		return &fs.PathError{Op: "setmeta", Path: c, Err: fs.ErrNotExist}
	}
	if old.Mode.Type() != m.Mode.Type() {
		return &fs.PathError{Op: "setmeta", Path: c, Err: fmt.Errorf("cannot change the file type")}
	}
	m.Size = old.Size
	if e != nil {
		o.put[c] = &memEntry{meta: m, data: e.data}
	} else {
		o.put[c] = &memEntry{meta: m} // data nil: contents still come from the base
	}
	o.log = append(o.log, Change{Kind: MetaSet, Path: c})
	return nil
}
