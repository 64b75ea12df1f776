package tree

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/romforge/romforge/internal/failure"
)

// hostileTree is a Tree whose listing can say anything: names with "..", entries listed as directories
// whose metadata says symlink, children under a symlink.
type hostileTree struct {
	meta     map[string]Meta
	children map[string][]string // listed names, as given (not cleaned)
	data     map[string][]byte
}

type hostileEntry struct {
	name string
	mode fs.FileMode
}

func (e hostileEntry) Name() string      { return e.name }
func (e hostileEntry) IsDir() bool       { return e.mode.IsDir() }
func (e hostileEntry) Type() fs.FileMode { return e.mode.Type() }
func (e hostileEntry) Info() (fs.FileInfo, error) {
	return NewFileInfo(e.name, Meta{Mode: e.mode}), nil
}

func (h *hostileTree) Meta(name string) (Meta, error) {
	if m, ok := h.meta[name]; ok {
		return m, nil
	}
	return Meta{}, fs.ErrNotExist
}

func (h *hostileTree) Open(name string) (fs.File, error) {
	m, ok := h.meta[name]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return &memFile{info: NewFileInfo(name, m), r: bytes.NewReader(h.data[name])}, nil
}

func (h *hostileTree) ReadDir(name string) ([]fs.DirEntry, error) {
	var out []fs.DirEntry
	for _, c := range h.children[name] {
		mode := fs.ModeDir
		if d, ok := h.data[c]; ok && d != nil {
			mode = 0
		}
		base := c
		if name != "." {
			base = strings.TrimPrefix(c, name+"/")
		}
		out = append(out, hostileEntry{name: base, mode: mode})
	}
	return out, nil
}

func TestExtractRefusesHostileTrees(t *testing.T) {
	dirM := Meta{Mode: fs.ModeDir | 0o755, ModTime: time.Unix(0, 0)}
	fileM := Meta{Mode: 0o644, Size: 4}
	cases := map[string]*hostileTree{
		"dot-dot name": {
			meta:     map[string]Meta{".": dirM, "../escaped": fileM},
			children: map[string][]string{".": {"../escaped"}},
			data:     map[string][]byte{"../escaped": []byte("evil")},
		},
		"climbing path": {
			// Listed in "a" as "../../escaped"; io/fs walking joins that to "../escaped".
			meta:     map[string]Meta{".": dirM, "a": dirM, "../escaped": fileM},
			children: map[string][]string{".": {"a"}, "a": {"a/../../escaped"}},
			data:     map[string][]byte{"a/../../escaped": []byte("evil"), "../escaped": []byte("evil")},
		},
		"child of a symlink": {
			meta: map[string]Meta{".": dirM, "link": {Mode: fs.ModeSymlink | 0o777, Target: "/"},
				"link/escaped": fileM},
			children: map[string][]string{".": {"link"}, "link": {"link/escaped"}},
			data:     map[string][]byte{"link/escaped": []byte("evil")},
		},
		"backslash name": {
			meta:     map[string]Meta{".": dirM, `..\escaped`: fileM},
			children: map[string][]string{".": {`..\escaped`}},
			data:     map[string][]byte{`..\escaped`: []byte("evil")},
		},
	}
	for name, tr := range cases {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "out")
			os.Mkdir(dir, 0o755)
			_, err := Extract(context.Background(), tr, dir)
			if !errors.Is(err, ErrEscape) || !errors.Is(err, failure.ErrRefused) {
				t.Fatalf("Extract = %v, want a refusal wrapping ErrEscape", err)
			}
			// Nothing was written beside dir or at the filesystem root.
			ents, _ := os.ReadDir(parent)
			if len(ents) != 1 {
				t.Errorf("extraction wrote beside its folder: %v", ents)
			}
			if _, err := os.Stat("/escaped"); err == nil {
				t.Fatal("a file escaped to /escaped")
			}
		})
	}
}

func TestExtractWritesTree(t *testing.T) {
	m := NewMem()
	m.MkdirAll("system/bin", Meta{Mode: fs.ModeDir | 0o755})
	m.MkdirAll("system/etc", Meta{Mode: fs.ModeDir | 0o755})
	m.Put("system/bin/sh", Meta{Mode: 0o755, Size: 5}, []byte("shell"))
	m.Put("system/etc/hosts", Meta{Mode: 0o644, Size: 9}, []byte("127.0.0.1"))
	m.Put("system/bin/toybox", Meta{Mode: fs.ModeSymlink | 0o777, Target: "sh"}, nil)
	dir := t.TempDir()
	st, err := Extract(context.Background(), m, dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 2 || st.Symlinks != 1 || st.Bytes != 14 {
		t.Fatalf("stats %+v", st)
	}
	f, _ := os.Open(filepath.Join(dir, "system/etc/hosts"))
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "127.0.0.1" {
		t.Fatalf("hosts = %q", b)
	}
	if tgt, _ := os.Readlink(filepath.Join(dir, "system/bin/toybox")); tgt != "sh" {
		t.Fatalf("symlink target %q", tgt)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "system/bin/sh")); fi.Mode().Perm() != 0o755 {
		t.Fatalf("sh mode %v", fi.Mode())
	}
	// Cancelled: stops at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Extract(ctx, m, t.TempDir()); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Extract = %v", err)
	}
}
