package safeio

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Every output romforge writes appears under its final name only when it is complete: it is written under a
// temporary name in the same directory (so the final rename is atomic and never crosses filesystems),
// flushed to disk, then renamed. Multi-file outputs (unpack, fs extract, a build's bundle) are built in a
// temporary directory beside the target and renamed into place at the end, so a failed or interrupted run
// leaves nothing that looks complete.
//
// Temporary paths are tracked while they exist so that an interrupted process can remove them all
// (RemoveTemps) even when the goroutine writing one does not get to run its own cleanup.

// TempMarker is part of every temporary name this package makes: ".NAME.tmp-PID-RANDOM". The pid lets a
// later run recognise the leftovers of a process that was killed (SIGKILL, power loss) and remove them.
const TempMarker = ".tmp-"

var temps = struct {
	sync.Mutex
	m map[string]struct{}
}{m: map[string]struct{}{}}

// TrackTemp records path as a temporary file or directory to remove on an emergency exit; the returned
// function forgets it (call it once the path was renamed away or removed).
func TrackTemp(path string) (untrack func()) {
	temps.Lock()
	temps.m[path] = struct{}{}
	temps.Unlock()
	return func() {
		temps.Lock()
		delete(temps.m, path)
		temps.Unlock()
	}
}

// RemoveTemps removes every tracked temporary path. It is meant for the last moments of an interrupted
// process; the paths stay tracked so a later call (a second interrupt) retries what failed.
func RemoveTemps() {
	temps.Lock()
	paths := make([]string, 0, len(temps.m))
	for p := range temps.m {
		paths = append(paths, p)
	}
	temps.Unlock()
	// Deepest first, so a tracked file inside a tracked directory does not make the directory's removal race.
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	for _, p := range paths {
		if os.RemoveAll(p) == nil {
			temps.Lock()
			delete(temps.m, p)
			temps.Unlock()
		}
	}
}

// tempName returns a fresh hidden name beside final.
func tempName(final string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(filepath.Dir(final), "."+filepath.Base(final)+TempMarker+strconv.Itoa(os.Getpid())+"-"+hex.EncodeToString(b[:]))
}

// sweepStale removes temporaries beside final left by processes that no longer run (a killed run's
// partial multi-GB image would otherwise stay forever). Only names of this package's form with a pid
// known to be dead are removed; where liveness cannot be told (pidAlive's "don't know") nothing is.
func sweepStale(final string) {
	dir, prefix := filepath.Dir(final), "."+filepath.Base(final)+TempMarker
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if alive, known := pidAlive(pid); known && !alive {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// IsTempName reports whether name (a base name) is one of this package's temporary names.
func IsTempName(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, TempMarker)
}

// File is an output file under construction. Write to it (it is an *os.File, so WriterAt, Seek and
// Truncate work), then Commit to publish it under its final name or Abort to drop it. Abort after a
// Commit does nothing, so `defer f.Abort()` is the usual cleanup.
type File struct {
	*os.File
	final   string
	untrack func()
	done    bool
}

// Create starts an output file at path with mode 0666 less the umask, like other tools' outputs.
func Create(path string) (*File, error) { return CreateMode(path, 0o666) }

// CreateMode starts an output file whose mode is perm less the umask (0777 for scripts).
func CreateMode(path string, perm fs.FileMode) (*File, error) {
	sweepStale(path)
	for range 4 {
		tmp := tempName(path)
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &File{File: f, final: path, untrack: TrackTemp(tmp)}, nil
	}
	return nil, fmt.Errorf("safeio: no free temporary name beside %s", path)
}

// Final is the name the file gets on Commit.
func (f *File) Final() string { return f.final }

// Commit flushes the file to disk and renames it to its final name, replacing what was there.
func (f *File) Commit() error {
	if f.done {
		return nil
	}
	f.done = true
	defer f.untrack()
	tmp := f.File.Name()
	err := f.File.Sync()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, f.final)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", f.final, err)
	}
	return nil
}

// Abort closes and removes the temporary file; after Commit it does nothing.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.File.Name())
	f.untrack()
}

// WriteFile writes data to path atomically with mode perm less the umask.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	f, err := CreateMode(path, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Commit()
}

// Dir is a multi-file output under construction: a temporary directory beside the target. Write into
// Path(), then Commit to move it into place or Abort to remove it. Abort after Commit does nothing.
type Dir struct {
	tmp, final string
	untrack    func()
	done       bool
}

// CreateDir starts an output directory at final (mode 0777 less the umask). Its parent is created if needed.
func CreateDir(final string) (*Dir, error) {
	final = filepath.Clean(final)
	if err := os.MkdirAll(filepath.Dir(final), 0o777); err != nil {
		return nil, err
	}
	sweepStale(final)
	for range 4 {
		tmp := tempName(final)
		err := os.Mkdir(tmp, 0o777)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &Dir{tmp: tmp, final: final, untrack: TrackTemp(tmp)}, nil
	}
	return nil, fmt.Errorf("safeio: no free temporary name beside %s", final)
}

// Path is the temporary directory to write into.
func (d *Dir) Path() string { return d.tmp }

// Final is the directory's name after Commit.
func (d *Dir) Final() string { return d.final }

// Commit moves the finished directory into place. When final does not exist or is an empty directory the
// whole directory is renamed at once. When final already holds files (unpacking into a folder that has
// other things), each top-level entry is renamed into it, replacing files of the same name, and the names
// in last are moved after all others (a manifest such as unpack.json, so it only appears once what it
// describes is there). A directory entry never replaces a non-empty directory.
func (d *Dir) Commit(last ...string) error {
	if d.done {
		return nil
	}
	d.done = true
	defer d.untrack()
	err := d.commit(last)
	if err != nil {
		os.RemoveAll(d.tmp)
		return fmt.Errorf("moving the output into %s: %w", d.final, err)
	}
	return nil
}

func (d *Dir) commit(last []string) error {
	st, err := os.Lstat(d.final)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return os.Rename(d.tmp, d.final)
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("%s exists and is not a directory", d.final)
	}
	if os.Remove(d.final) == nil { // empty: replace it whole
		return os.Rename(d.tmp, d.final)
	}
	ents, err := os.ReadDir(d.tmp)
	if err != nil {
		return err
	}
	isLast := map[string]bool{}
	for _, n := range last {
		isLast[n] = true
	}
	sort.SliceStable(ents, func(i, j int) bool { return !isLast[ents[i].Name()] && isLast[ents[j].Name()] })
	for _, e := range ents {
		src, dst := filepath.Join(d.tmp, e.Name()), filepath.Join(d.final, e.Name())
		if e.IsDir() {
			if dst, err := os.Lstat(dst); err == nil && !dst.IsDir() {
				return fmt.Errorf("%s exists and is not a directory", filepath.Join(d.final, e.Name()))
			}
			os.Remove(dst) // an empty directory of that name gives way; a non-empty one makes Rename fail
		}
		if err := os.Rename(src, dst); err != nil {
			return err
		}
	}
	return os.Remove(d.tmp)
}

// Abort removes the temporary directory and everything in it; after Commit it does nothing.
func (d *Dir) Abort() {
	if d.done {
		return
	}
	d.done = true
	os.RemoveAll(d.tmp)
	d.untrack()
}
