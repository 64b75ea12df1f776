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
	if len(sc.Errors) > 0 {
		more := ""
		if len(sc.Errors) > 1 {
			more = fmt.Sprintf(" (and %d more)", len(sc.Errors)-1)
		}
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: %s %s%s", UpdaterScriptPath, sc.Errors[0], more))
	}
	src, srcLine := "system", 0
	for _, e := range sc.Extracts {
		if e.Dir && e.Dest == "/system" {
			src, srcLine = strings.Trim(e.Source, "/"), e.Line
		}
	}
	t := &OTATree{Script: sc, entries: map[string]*otaEntry{}}
	epoch := time.Unix(0, 0).UTC()
	t.entries["."] = &otaEntry{meta: tree.Meta{Mode: fs.ModeDir | 0o755, ModTime: epoch}}
	// mkdirs makes name and its parents directories; child is the zip entry that needs them.
	var mkdirs func(name string, mt time.Time, child string) error
	mkdirs = func(name string, mt time.Time, child string) error {
		if e, ok := t.entries[name]; ok {
			switch {
			case e.meta.Mode.IsDir():
				return nil
			case e.meta.Mode&fs.ModeSymlink != 0:
				return failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: zip entry %s lies inside %s, which is a symlink", quoteName(child), quoteName(src+"/"+name)))
			}
			return failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: zip entry %s needs %s to be a directory, but it is a file", quoteName(child), quoteName(src+"/"+name)))
		}
		if err := mkdirs(path.Dir(name), epoch, child); err != nil {
			return err
		}
		t.entries[name] = &otaEntry{meta: tree.Meta{Mode: fs.ModeDir | 0o755, ModTime: mt}}
		return nil
	}
	found := 0
	for _, f := range zr.File {
		if err := checkEntry(f); err != nil {
			return nil, err
		}
		rel, ok := strings.CutPrefix(f.Name, src+"/")
		if !ok || strings.Trim(rel, "/") == "" {
			continue
		}
		found++
		name, err := tree.Clean(strings.TrimSuffix(rel, "/"))
		if err != nil {
			return nil, failure.Kinded(failure.ErrRefused, fmt.Errorf("rom: zip entry %s escapes the output: %w", quoteName(f.Name), tree.ErrEscape))
		}
		if err := mkdirs(path.Dir(name), epoch, f.Name); err != nil {
			return nil, err
		}
		if strings.HasSuffix(f.Name, "/") || f.Mode().IsDir() {
			if err := mkdirs(name, f.Modified.UTC(), f.Name); err != nil {
				return nil, err
			}
			continue
		}
		if old, dup := t.entries[name]; dup {
			if old.meta.Mode.IsDir() {
				return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: zip entry %s is a file, but other entries make it a directory", quoteName(f.Name)))
			}
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: duplicate entry %s in the OTA zip", quoteName(f.Name)))
		}
		if f.UncompressedSize64 > 1<<40 {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: zip entry %s claims %d bytes", quoteName(f.Name), f.UncompressedSize64))
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
	if found == 0 {
		where := "the default"
		if srcLine > 0 {
			where = fmt.Sprintf("line %d's", srcLine)
		}
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: %s extracts %s to /system (%s package_extract_dir), but the zip has no entries under %s/: the system image would be empty", UpdaterScriptPath, quoteName(src), where, quoteName(src)))
	}
	for _, l := range sc.Symlinks {
		rel, ok := strings.CutPrefix(l.Path, "/system/")
		if !ok {
			continue
		}
		name, err := tree.Clean(rel)
		if err != nil {
			return nil, failure.Kinded(failure.ErrRefused, fmt.Errorf("rom: updater-script line %d: symlink %s escapes /system: %w", l.Line, quoteName(l.Path), err))
		}
		if e, ok := t.entries[name]; ok && e.meta.Mode.IsDir() {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: updater-script line %d: symlink %s would replace a directory", l.Line, quoteName(l.Path)))
		}
		if err := mkdirs(path.Dir(name), epoch, l.Path); err != nil {
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

// Limits on zip entry names: Linux's PATH_MAX, and a depth no Android tree comes near (the recursion
// that makes parent directories stays shallow).
const (
	maxNameLen = 4096
	maxDepth   = 64
)

// quoteName quotes an entry name for a message, at most a few hundred bytes of it.
func quoteName(s string) string {
	const max = 200
	if len(s) > max {
		return fmt.Sprintf("%q… (%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// checkEntry applies the rules every entry of an OTA zip must meet, naming the entry and the rule.
func checkEntry(f *zip.File) error {
	name := f.Name
	if len(name) > maxNameLen {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: zip entry %s: name longer than %d bytes", quoteName(name), maxNameLen))
	}
	// Both separators count: a name with "..\" escapes when a Windows tool extracts the zip.
	els := strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' })
	if strings.HasPrefix(name, "/") || strings.HasPrefix(name, "\\") || strings.ContainsRune(name, 0) || len(name) > 1 && name[1] == ':' {
		return failure.Kinded(failure.ErrRefused, fmt.Errorf("rom: zip entry %s escapes the output (absolute name): %w", quoteName(name), tree.ErrEscape))
	}
	for _, el := range els {
		if el == ".." {
			return failure.Kinded(failure.ErrRefused, fmt.Errorf("rom: zip entry %s escapes the output (\"..\" in its name): %w", quoteName(name), tree.ErrEscape))
		}
	}
	if len(els) > maxDepth {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: zip entry %s nests %d levels deep (more than %d)", quoteName(name), len(els), maxDepth))
	}
	if t := f.Mode().Type(); t&^(fs.ModeDir|fs.ModeSymlink) != 0 {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: zip entry %s has file type %v; an OTA holds only files, directories and symlinks", quoteName(name), t))
	}
	return nil
}

func readSmallEntry(f *zip.File, limit int64) (string, error) {
	rc, err := f.Open()
	if err != nil {
		return "", failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: zip entry %s: %w", quoteName(f.Name), err))
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil || int64(len(b)) > limit {
		return "", failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: zip entry %s: unreadable symlink target or longer than %d bytes", quoteName(f.Name), limit))
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
