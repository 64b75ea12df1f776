package patches

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/internal/failure"
)

// Target is the set of partitions a patch run edits, each through its own Overlay. Paths in steps and
// reports are "<partition>/<path inside it>", e.g. "system/etc/hosts", whatever the image layout.
type Target struct {
	parts  map[string]*tree.Overlay
	prefix map[string]string // "system/" for system-as-root images whose files live under /system
	names  []string
}

// NewTarget wraps each partition tree in an Overlay. A "system" tree laid out system-as-root
// (system/build.prop inside the image) is addressed the same way as a plain one.
func NewTarget(parts map[string]tree.Tree) *Target {
	t := &Target{parts: map[string]*tree.Overlay{}, prefix: map[string]string{}}
	for name, tr := range parts {
		o, ok := tr.(*tree.Overlay)
		if !ok {
			o = tree.NewOverlay(tr)
		}
		t.parts[name] = o
		if name == "system" && systemAsRoot(o) {
			t.prefix[name] = "system/"
		}
		t.names = append(t.names, name)
	}
	sort.Strings(t.names)
	return t
}

// Partitions returns the partition names, sorted.
func (t *Target) Partitions() []string { return t.names }

// Overlay returns a partition's overlay (nil when absent).
func (t *Target) Overlay(name string) *tree.Overlay { return t.parts[name] }

// split resolves "part/rel" to the overlay and the name inside it.
func (t *Target) split(p string) (*tree.Overlay, string, string, error) {
	p = strings.TrimPrefix(p, "/")
	part, rel, _ := strings.Cut(p, "/")
	o := t.parts[part]
	if o == nil {
		return nil, "", "", fmt.Errorf("%s: %w (no partition %q in the target)", p, fs.ErrNotExist, part)
	}
	name, err := tree.Clean(t.prefix[part] + rel)
	if err != nil {
		return nil, "", "", failure.Kinded(failure.ErrRefused, fmt.Errorf("patches: %w", err))
	}
	return o, part, name, nil
}

// Meta returns an entry's metadata.
func (t *Target) Meta(p string) (tree.Meta, error) {
	o, _, name, err := t.split(p)
	if err != nil {
		return tree.Meta{}, err
	}
	return o.Meta(name)
}

// Exists reports whether p exists.
func (t *Target) Exists(p string) bool { _, err := t.Meta(p); return err == nil }

// maxEdit bounds files the engine reads whole to edit (props, XML, rc, hosts).
const maxEdit = 64 << 20

// ReadFile reads a regular file for editing.
func (t *Target) ReadFile(p string) ([]byte, tree.Meta, error) {
	o, _, name, err := t.split(p)
	if err != nil {
		return nil, tree.Meta{}, err
	}
	m, err := o.Meta(name)
	if err != nil {
		return nil, m, err
	}
	if !m.Mode.IsRegular() {
		return nil, m, fmt.Errorf("%s is not a regular file (refusing to follow symlinks)", p)
	}
	if m.Size > maxEdit {
		return nil, m, fmt.Errorf("%s is %d bytes; too large to edit", p, m.Size)
	}
	f, err := o.Open(name)
	if err != nil {
		return nil, m, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxEdit+1))
	return b, m, err
}

// WriteFile replaces or creates a regular file with metadata m.
func (t *Target) WriteFile(p string, data []byte, m tree.Meta) error {
	o, _, name, err := t.split(p)
	if err != nil {
		return err
	}
	return o.Put(name, m, data)
}

// Remove deletes p and everything below it.
func (t *Target) Remove(p string) error {
	o, _, name, err := t.split(p)
	if err != nil {
		return err
	}
	return o.Remove(name)
}

// Glob returns the existing paths matching pattern ("*/etc/init/*.rc", "system/app/Foo"); a segment
// "**" matches any number of directories. Symlinks are listed but never descended into.
func (t *Target) Glob(pattern string) ([]string, error) {
	pattern = strings.TrimPrefix(pattern, "/")
	partPat, rest, _ := strings.Cut(pattern, "/")
	var out []string
	for _, part := range t.names {
		if ok, err := path.Match(partPat, part); err != nil {
			return nil, fmt.Errorf("bad glob %q: %w", pattern, err)
		} else if !ok {
			continue
		}
		o := t.parts[part]
		pre := strings.TrimSuffix(t.prefix[part], "/")
		start := "."
		if pre != "" {
			start = pre
		}
		var segs []string
		if rest != "" {
			segs = strings.Split(rest, "/")
		}
		matches, err := globIn(o, start, segs)
		if err != nil {
			return nil, err
		}
		for _, m := range matches {
			rel := m
			if pre != "" {
				rel = strings.TrimPrefix(strings.TrimPrefix(m, pre), "/")
			}
			if rel == "." || rel == "" {
				out = append(out, part)
			} else {
				out = append(out, part+"/"+rel)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

func globIn(o *tree.Overlay, dir string, segs []string) ([]string, error) {
	if len(segs) == 0 {
		return []string{dir}, nil
	}
	seg := segs[0]
	if seg == "**" {
		out, err := globIn(o, dir, segs[1:])
		if err != nil {
			return nil, err
		}
		ents, err := o.ReadDir(dir)
		if err != nil {
			return out, nil
		}
		for _, e := range ents {
			if e.IsDir() {
				sub, err := globIn(o, path.Join(dir, e.Name()), segs)
				if err != nil {
					return nil, err
				}
				out = append(out, sub...)
			}
		}
		return out, nil
	}
	if !strings.ContainsAny(seg, `*?[\`) {
		next := path.Join(dir, seg)
		m, err := o.Meta(next)
		if err != nil {
			return nil, nil
		}
		if len(segs) > 1 && !m.Mode.IsDir() {
			return nil, nil
		}
		return globIn(o, next, segs[1:])
	}
	ents, err := o.ReadDir(dir)
	if err != nil {
		return nil, nil
	}
	var out []string
	for _, e := range ents {
		ok, err := path.Match(seg, e.Name())
		if err != nil {
			return nil, fmt.Errorf("bad glob segment %q: %w", seg, err)
		}
		if !ok || (len(segs) > 1 && !e.IsDir()) {
			continue
		}
		sub, err := globIn(o, path.Join(dir, e.Name()), segs[1:])
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}

// files lists the regular files at or below p (p itself when it is a file), for reports.
func (t *Target) files(ctx context.Context, p string) ([]string, error) {
	o, part, name, err := t.split(p)
	if err != nil {
		return nil, err
	}
	pre := strings.TrimSuffix(t.prefix[part], "/")
	var out []string
	err = fs.WalkDir(o, name, func(n string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.Type().IsRegular() {
			rel := n
			if pre != "" {
				rel = strings.TrimPrefix(strings.TrimPrefix(n, pre), "/")
			}
			out = append(out, part+"/"+rel)
		}
		return nil
	})
	return out, err
}

// hashFile returns size and sha256 of a regular file.
func (t *Target) hashFile(p string) (int64, string, error) {
	o, _, name, err := t.split(p)
	if err != nil {
		return 0, "", err
	}
	f, err := o.Open(name)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// systemAsRoot reports whether a system tree keeps its files under /system (system-as-root images): its
// build.prop is there, or it has system/etc and no top-level etc (some builds keep build.prop elsewhere).
func systemAsRoot(o *tree.Overlay) bool {
	if _, err := o.Meta("system/build.prop"); err == nil {
		return true
	}
	if m, err := o.Meta("system/etc"); err == nil && m.Mode.IsDir() {
		_, err := o.Meta("etc")
		return err != nil
	}
	return false
}

// mkdirAll creates p's missing directories, each owned and labelled like the nearest existing
// ancestor (on Android every directory a patch creates under /system is system_file, root-owned), and
// returns p's metadata.
func (t *Target) mkdirAll(p string, r *StepReport) (tree.Meta, error) {
	if m, err := t.Meta(p); err == nil {
		if !m.Mode.IsDir() {
			return m, fmt.Errorf("%s is not a directory", p)
		}
		return m, nil
	}
	part, rel, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	if rel == "" {
		return tree.Meta{}, fmt.Errorf("%s: %w (no partition %q in the target)", p, fs.ErrNotExist, part)
	}
	pm, err := t.mkdirAll(path.Dir(p), r)
	if err != nil {
		return pm, err
	}
	m := tree.Meta{Mode: fs.ModeDir | 0o755, UID: pm.UID, GID: pm.GID, ModTime: pm.ModTime, Xattrs: pm.Xattrs}
	if err := t.WriteFile(p, nil, m); err != nil {
		return m, err
	}
	if r != nil {
		r.Changes = append(r.Changes, FileChange{Path: p, Action: "added", Detail: []string{"directory created for a file the set writes"}})
	}
	return m, nil
}
