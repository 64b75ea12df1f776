package rom

import (
	"archive/zip"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/rom/edify"
)

// UpdaterScriptPath is where recovery looks for the edify script.
const UpdaterScriptPath = "META-INF/com/google/android/updater-script"

// OTATree is the system partition of a file-based OTA zip as a tree.Tree: the zip's system/ entries
// (contents streamed from the zip) with the ownership, modes, capabilities, SELinux labels and
// symlinks the updater-script sets.
type OTATree struct {
	Script  *edify.Script
	entries map[string]*otaEntry
}

type otaEntry struct {
	meta tree.Meta
	zf   *zip.File
	kids []string
}

// ReadUpdaterScript reads and parses the zip's updater-script.
func ReadUpdaterScript(zr *zip.Reader) (*edify.Script, error) {
	f, err := zr.Open(UpdaterScriptPath)
	if err != nil {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: no %s in the zip: not a recovery OTA", UpdaterScriptPath))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4<<20+1))
	if err != nil {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: reading %s: %w", UpdaterScriptPath, err))
	}
	if len(b) > 4<<20 {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: %s is larger than 4 MiB", UpdaterScriptPath))
	}
	return edify.ParseScript(string(b))
}

// FileOTATree builds the system tree of a file-based OTA zip. The zip directory the script extracts to
// /system (package_extract_dir("system", "/system"); "system" when the script does not say) becomes the
// tree root; the script's symlinks under /system are added; every entry's metadata is the script's
// permission calls applied in order over the defaults recovery uses (root:root, 0755 dirs, 0644 files).
func FileOTATree(zr *zip.Reader) (*OTATree, error) {
	sc, err := ReadUpdaterScript(zr)
	if err != nil {
		return nil, err
	}
	src := "system"
	for _, e := range sc.Extracts {
		if e.Dir && e.Dest == "/system" {
			src = strings.Trim(e.Source, "/")
		}
	}
	t := &OTATree{Script: sc, entries: map[string]*otaEntry{}}
	epoch := time.Unix(0, 0).UTC()
	t.entries["."] = &otaEntry{meta: tree.Meta{Mode: fs.ModeDir | 0o755, ModTime: epoch}}
	var mkdirs func(name string, mt time.Time) error
	mkdirs = func(name string, mt time.Time) error {
		if e, ok := t.entries[name]; ok {
			if !e.meta.Mode.IsDir() {
				return failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: %s is both a file and a directory in the OTA", name))
			}
			return nil
		}
		if err := mkdirs(path.Dir(name), epoch); err != nil {
			return err
		}
		t.entries[name] = &otaEntry{meta: tree.Meta{Mode: fs.ModeDir | 0o755, ModTime: mt}}
		return nil
	}
	for _, f := range zr.File {
		rel, ok := strings.CutPrefix(f.Name, src+"/")
		if !ok || strings.Trim(rel, "/") == "" {
			continue
		}
		name, err := tree.Clean(strings.TrimSuffix(rel, "/"))
		if err != nil {
			return nil, failure.Kinded(failure.ErrRefused, fmt.Errorf("rom: zip entry %q: %w", f.Name, err))
		}
		if err := mkdirs(path.Dir(name), epoch); err != nil {
			return nil, err
		}
		if strings.HasSuffix(f.Name, "/") || f.Mode().IsDir() {
			if err := mkdirs(name, f.Modified.UTC()); err != nil {
				return nil, err
			}
			continue
		}
		if _, dup := t.entries[name]; dup {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: %s appears twice in the OTA zip", f.Name))
		}
		if f.UncompressedSize64 > 1<<40 {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: %s claims %d bytes", f.Name, f.UncompressedSize64))
		}
		e := &otaEntry{meta: tree.Meta{Mode: 0o644, ModTime: f.Modified.UTC(), Size: int64(f.UncompressedSize64)}, zf: f}
		if f.Mode()&fs.ModeSymlink != 0 {
			target, err := readSmallEntry(f, 4096)
			if err != nil {
				return nil, err
			}
			e = &otaEntry{meta: tree.Meta{Mode: fs.ModeSymlink | 0o777, ModTime: f.Modified.UTC(), Target: target}}
		}
		t.entries[name] = e
	}
	for _, l := range sc.Symlinks {
		rel, ok := strings.CutPrefix(l.Path, "/system/")
		if !ok {
			continue
		}
		name, err := tree.Clean(rel)
		if err != nil {
			return nil, failure.Kinded(failure.ErrRefused, fmt.Errorf("rom: updater-script line %d: symlink %q: %w", l.Line, l.Path, err))
		}
		if e, ok := t.entries[name]; ok && e.meta.Mode.IsDir() {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: updater-script line %d: symlink %s would replace a directory", l.Line, l.Path))
		}
		if err := mkdirs(path.Dir(name), epoch); err != nil {
			return nil, err
		}
		// symlink() replaces whatever was extracted there, as recovery does.
		t.entries[name] = &otaEntry{meta: tree.Meta{Mode: fs.ModeSymlink | 0o777, ModTime: epoch, Target: l.Target}}
	}
	for name, e := range t.entries {
		dev := "/system"
		if name != "." {
			dev += "/" + name
			p := t.entries[path.Dir(name)]
			p.kids = append(p.kids, name)
		}
		isDir := e.meta.Mode.IsDir()
		a := sc.Resolve(dev, isDir, edify.Attrs{Mode: uint32(e.meta.Mode.Perm())})
		e.meta.UID, e.meta.GID = a.UID, a.GID
		if e.meta.Mode&fs.ModeSymlink == 0 {
			e.meta.Mode = e.meta.Mode.Type() | tree.FileMode(a.Mode&0o7777)&^fs.ModeType
		}
		if a.SELabel != "" {
			e.meta.SetSELinux(a.SELabel)
		}
		if a.Capabilities != 0 && e.meta.Mode.IsRegular() {
			e.meta.SetCapabilities(a.Capabilities)
		}
	}
	for _, e := range t.entries {
		sort.Strings(e.kids)
	}
	return t, nil
}

func readSmallEntry(f *zip.File, limit int64) (string, error) {
	rc, err := f.Open()
	if err != nil {
		return "", failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: %s: %w", f.Name, err))
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil || int64(len(b)) > limit {
		return "", failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: %s: unreadable or too long symlink target", f.Name))
	}
	return string(b), nil
}

// Meta implements tree.Tree.
func (t *OTATree) Meta(name string) (tree.Meta, error) {
	e, ok := t.entries[name]
	if !ok {
		return tree.Meta{}, &fs.PathError{Op: "meta", Path: name, Err: fs.ErrNotExist}
	}
	return e.meta, nil
}

// ReadDir implements fs.ReadDirFS.
func (t *OTATree) ReadDir(name string) ([]fs.DirEntry, error) {
	e, ok := t.entries[name]
	if !ok || !e.meta.Mode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	out := make([]fs.DirEntry, 0, len(e.kids))
	for _, k := range e.kids {
		out = append(out, fs.FileInfoToDirEntry(tree.NewFileInfo(path.Base(k), t.entries[k].meta)))
	}
	return out, nil
}

// Open implements fs.FS; regular files stream from the zip.
func (t *OTATree) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	e, ok := t.entries[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	info := tree.NewFileInfo(path.Base(name), e.meta)
	if e.meta.Mode.IsDir() {
		ents, err := t.ReadDir(name)
		if err != nil {
			return nil, err
		}
		return tree.NewDirFile(info, ents), nil
	}
	if e.zf == nil || !e.meta.Mode.IsRegular() {
		return &zipFile{info: info, r: io.NopCloser(strings.NewReader(""))}, nil
	}
	rc, err := e.zf.Open()
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &zipFile{info: info, r: rc}, nil
}

type zipFile struct {
	info fs.FileInfo
	r    io.ReadCloser
}

func (f *zipFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *zipFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *zipFile) Close() error               { return f.r.Close() }

var _ tree.Tree = (*OTATree)(nil)
