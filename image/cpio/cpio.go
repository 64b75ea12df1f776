package cpio

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
)

// Magic numbers and the name that ends an archive.
const (
	MagicNewc = "070701"
	MagicCRC  = "070702"
	Trailer   = "TRAILER!!!"

	headerLen = 110
)

// File type bits of the mode field (the classic Unix values cpio stores).
const (
	ModeType    = 0o170000
	ModeDir     = 0o040000
	ModeRegular = 0o100000
	ModeSymlink = 0o120000
	ModePerm    = 0o7777
)

// FormatError reports a malformed archive.
type FormatError struct {
	Offset int64
	Msg    string
	Err    error
}

func (e *FormatError) Error() string {
	s := fmt.Sprintf("cpio: at offset %d: %s", e.Offset, e.Msg)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap makes a FormatError an ErrInvalid (exit 4).
func (e *FormatError) Unwrap() []error {
	if e.Err != nil {
		return []error{failure.ErrInvalid, e.Err}
	}
	return []error{failure.ErrInvalid}
}

// ErrNotExist is returned for a path the archive does not hold.
var ErrNotExist = fs.ErrNotExist

// Entry is one archive member. Data is a regular file's contents or a symlink's target.
type Entry struct {
	Name      string
	Ino       uint32
	Mode      uint32 // file type and permission bits
	UID, GID  uint32
	Nlink     uint32
	Mtime     uint32
	DevMajor  uint32
	DevMinor  uint32
	RdevMajor uint32
	RdevMinor uint32
	Check     uint32 // 070702: sum of the data bytes
	Data      []byte

	magic string
	raw   []byte // header, name and name padding as read; reused while the entry is unchanged
	pad   []byte // bytes between the data and the next header (or the end) as read
	dirty bool
}

// IsDir, IsRegular and IsSymlink report the entry's file type.
func (e *Entry) IsDir() bool     { return e.Mode&ModeType == ModeDir }
func (e *Entry) IsRegular() bool { return e.Mode&ModeType == ModeRegular }
func (e *Entry) IsSymlink() bool { return e.Mode&ModeType == ModeSymlink }

// IsTrailer reports whether the entry ends an archive.
func (e *Entry) IsTrailer() bool { return e.Name == Trailer }

// Archive is a parsed cpio archive, or several concatenated ones (the kernel accepts those, and some
// ramdisks are built that way); trailers stay in Entries so the layout is kept.
type Archive struct {
	Entries []*Entry

	upper    bool // write hex digits in upper case, as GNU cpio does (Android's mkbootfs uses lower case)
	magic    string
	origSize int
	changed  bool // entries were added or removed
}

func align4(n int) int { return (n + 3) &^ 3 }

func parseHex(b []byte) (uint32, bool) {
	var v uint32
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint32(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint32(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint32(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// Parse reads an uncompressed archive. It keeps every byte: Bytes of an unedited archive returns b.
func Parse(b []byte) (*Archive, error) {
	a := &Archive{origSize: len(b)}
	caseKnown := false
	off := 0
	for off < len(b) {
		if len(b)-off < headerLen {
			return nil, &FormatError{Offset: int64(off), Msg: fmt.Sprintf("header truncated (%d bytes left)", len(b)-off)}
		}
		h := b[off : off+headerLen]
		magic := string(h[:6])
		if magic != MagicNewc && magic != MagicCRC {
			if magic[:5] == "07070" {
				return nil, &FormatError{Offset: int64(off), Msg: fmt.Sprintf("cpio format %q is not supported (only newc 070701 and crc 070702)", magic)}
			}
			return nil, &FormatError{Offset: int64(off), Msg: fmt.Sprintf("bad magic %q", h[:6])}
		}
		var f [13]uint32
		for i := range f {
			v, ok := parseHex(h[6+8*i : 14+8*i])
			if !ok {
				return nil, &FormatError{Offset: int64(off + 6 + 8*i), Msg: fmt.Sprintf("header field %q is not hexadecimal", h[6+8*i:14+8*i])}
			}
			f[i] = v
		}
		if !caseKnown {
			if bytes.ContainsAny(h[6:], "ABCDEF") {
				a.upper, caseKnown = true, true
			} else if bytes.ContainsAny(h[6:], "abcdef") {
				caseKnown = true
			}
		}
		namesize, filesize := int(f[11]), int64(f[6])
		if namesize == 0 || namesize > len(b)-off-headerLen {
			return nil, &FormatError{Offset: int64(off + 94), Msg: fmt.Sprintf("name size %d runs past the archive", namesize)}
		}
		nameEnd := off + headerLen + namesize
		dataOff := min(align4(nameEnd), len(b))
		if filesize > int64(len(b)-dataOff) {
			return nil, &FormatError{Offset: int64(off + 54), Msg: fmt.Sprintf("file size %d runs past the archive (%d bytes left)", filesize, len(b)-dataOff)}
		}
		dataEnd := dataOff + int(filesize)
		e := &Entry{
			Name: safeio.CString(b[off+headerLen : nameEnd]),
			Ino:  f[0], Mode: f[1], UID: f[2], GID: f[3], Nlink: f[4], Mtime: f[5],
			DevMajor: f[7], DevMinor: f[8], RdevMajor: f[9], RdevMinor: f[10], Check: f[12],
			Data:  b[dataOff:dataEnd:dataEnd],
			magic: magic,
			raw:   b[off:dataOff:dataOff],
		}
		if a.magic == "" {
			a.magic = magic
		}
		next := min(align4(dataEnd), len(b))
		if e.IsTrailer() {
			// Between archives (or after the last one) come zero padding or other bytes; the next
			// archive, if any, starts at a 4-byte boundary with the magic.
			next = len(b)
			p := align4(dataEnd)
			for p+4 <= len(b) && safeio.AllZero(b[p:p+4]) {
				p += 4
			}
			if p+6 <= len(b) && string(b[p:p+5]) == "07070" {
				next = p
			}
		}
		e.pad = b[dataEnd:next:next]
		a.Entries = append(a.Entries, e)
		off = next
	}
	if len(a.Entries) == 0 {
		return nil, &FormatError{Offset: 0, Msg: "empty archive"}
	}
	if !a.Entries[len(a.Entries)-1].IsTrailer() {
		return nil, &FormatError{Offset: int64(len(b)), Msg: "archive ends without " + Trailer + ": truncated"}
	}
	if a.magic == "" {
		a.magic = MagicNewc
	}
	return a, nil
}

// Modified reports whether anything was edited since Parse.
func (a *Archive) Modified() bool {
	if a.changed {
		return true
	}
	for _, e := range a.Entries {
		if e.dirty {
			return true
		}
	}
	return false
}

// Bytes writes the archive. Unchanged entries are copied as read; edited and new ones get a fresh
// header in the archive's style. When anything changed, the block padding after the final trailer is
// recomputed (GNU cpio pads to 512 bytes, mkbootfs only to 4).
func (a *Archive) Bytes() []byte {
	modified := a.Modified()
	var out bytes.Buffer
	last := len(a.Entries) - 1
	for i, e := range a.Entries {
		if !e.dirty && e.raw != nil {
			out.Write(e.raw)
			out.Write(e.Data)
		} else {
			a.writeHeader(&out, e)
			out.Write(e.Data)
		}
		switch {
		case i == last && modified && e.IsTrailer():
			out.Write(make([]byte, a.finalPad(out.Len(), e)))
		case !e.dirty && e.pad != nil:
			out.Write(e.pad)
		default:
			out.Write(make([]byte, align4(out.Len())-out.Len()))
		}
	}
	return out.Bytes()
}

// finalPad is the zero padding after the last trailer of an edited archive.
func (a *Archive) finalPad(n int, e *Entry) int {
	block := 4
	if len(e.pad) > 3 && safeio.AllZero(e.pad) && a.origSize%512 == 0 {
		block = 512
	}
	return (block - n%block) % block
}

func (a *Archive) writeHeader(out *bytes.Buffer, e *Entry) {
	magic := e.magic
	if magic == "" {
		magic = a.magic
	}
	format := "%08x"
	if a.upper {
		format = "%08X"
	}
	out.WriteString(magic)
	for _, v := range []uint32{e.Ino, e.Mode, e.UID, e.GID, e.Nlink, e.Mtime, uint32(len(e.Data)),
		e.DevMajor, e.DevMinor, e.RdevMajor, e.RdevMinor, uint32(len(e.Name) + 1), e.Check} {
		fmt.Fprintf(out, format, v)
	}
	out.WriteString(e.Name)
	out.WriteByte(0)
	out.Write(make([]byte, align4(out.Len())-out.Len()))
}

func checksum(b []byte) uint32 {
	var s uint32
	for _, c := range b {
		s += uint32(c)
	}
	return s
}

// clean turns "./etc/init.rc", "/etc/init.rc" and "etc/init.rc" into one key.
func clean(name string) string {
	name = strings.TrimLeft(name, "/")
	c := path.Clean("/" + name)[1:]
	return c
}

func (a *Archive) index(name string) int {
	want := clean(name)
	for i, e := range a.Entries {
		if !e.IsTrailer() && clean(e.Name) == want {
			return i
		}
	}
	return -1
}

// Lookup returns the entry for name ("init.rc", "./init.rc" and "/init.rc" are the same), or nil.
func (a *Archive) Lookup(name string) *Entry {
	if i := a.index(name); i >= 0 {
		return a.Entries[i]
	}
	return nil
}

// ReadFile returns a regular file's contents (for a hard-linked file stored once, the copy that holds
// the data).
func (a *Archive) ReadFile(name string) ([]byte, error) {
	e := a.Lookup(name)
	if e == nil {
		return nil, fmt.Errorf("cpio: %s: %w", name, ErrNotExist)
	}
	if !e.IsRegular() {
		return nil, fmt.Errorf("cpio: %s is not a regular file (mode %06o)", name, e.Mode)
	}
	if len(e.Data) == 0 && e.Nlink > 1 {
		for _, o := range a.Entries {
			if o.Ino == e.Ino && o.DevMajor == e.DevMajor && o.DevMinor == e.DevMinor && len(o.Data) > 0 {
				return o.Data, nil
			}
		}
	}
	return e.Data, nil
}

// Replace sets a regular file's contents, keeping every other header field.
func (a *Archive) Replace(name string, data []byte) error {
	e := a.Lookup(name)
	if e == nil {
		return fmt.Errorf("cpio: replace %s: %w", name, ErrNotExist)
	}
	if !e.IsRegular() {
		return fmt.Errorf("cpio: replace %s: not a regular file (mode %06o)", name, e.Mode)
	}
	e.Data = bytes.Clone(data)
	if e.magic == MagicCRC {
		e.Check = checksum(e.Data)
	}
	e.dirty = true
	return nil
}

// Chmod sets the permission bits of name, keeping its file type.
func (a *Archive) Chmod(name string, perm uint32) error {
	e := a.Lookup(name)
	if e == nil {
		return fmt.Errorf("cpio: chmod %s: %w", name, ErrNotExist)
	}
	e.Mode = e.Mode&^ModePerm | perm&ModePerm
	e.dirty = true
	return nil
}

// Remove deletes name and, for a directory, everything below it.
func (a *Archive) Remove(name string) error {
	i := a.index(name)
	if i < 0 {
		return fmt.Errorf("cpio: remove %s: %w", name, ErrNotExist)
	}
	prefix := clean(name) + "/"
	kept := a.Entries[:0:0]
	for j, e := range a.Entries {
		if j == i || !e.IsTrailer() && strings.HasPrefix(clean(e.Name), prefix) {
			continue
		}
		kept = append(kept, e)
	}
	a.Entries = kept
	a.changed = true
	return nil
}

// Add inserts a new entry before the first trailer. Its parent directory must exist; the name takes
// the "./" style of its parent; Ino 0 gets the next free inode number and Nlink 0 becomes 1 (2 for a
// directory).
func (a *Archive) Add(e Entry) error {
	key := clean(e.Name)
	if key == "" || key == "." {
		return fmt.Errorf("cpio: add: empty name")
	}
	if a.index(key) >= 0 {
		return fmt.Errorf("cpio: add %s: %w", key, fs.ErrExist)
	}
	name := key
	if dir := path.Dir(key); dir != "." {
		p := a.Lookup(dir)
		if p == nil || !p.IsDir() {
			return fmt.Errorf("cpio: add %s: parent directory %s: %w", key, dir, ErrNotExist)
		}
		name = strings.TrimSuffix(p.Name, "/") + "/" + path.Base(key)
	} else if a.dotSlash() {
		name = "./" + key
	}
	ne := e
	ne.Name, ne.Data, ne.dirty, ne.raw, ne.pad, ne.magic = name, bytes.Clone(e.Data), true, nil, nil, a.magic
	if ne.magic == MagicCRC && ne.IsRegular() {
		ne.Check = checksum(ne.Data)
	}
	if ne.Ino == 0 {
		for _, o := range a.Entries {
			ne.Ino = max(ne.Ino, o.Ino)
		}
		ne.Ino++
	}
	if ne.Nlink == 0 {
		ne.Nlink = 1
		if ne.IsDir() {
			ne.Nlink = 2
		}
	}
	at := len(a.Entries)
	for i, o := range a.Entries {
		if o.IsTrailer() {
			at = i
			break
		}
	}
	a.Entries = append(a.Entries[:at], append([]*Entry{&ne}, a.Entries[at:]...)...)
	a.changed = true
	return nil
}

// dotSlash reports whether the archive names top-level entries "./name" (GNU cpio from find .).
func (a *Archive) dotSlash() bool {
	for _, e := range a.Entries {
		if strings.HasPrefix(e.Name, "./") {
			return true
		}
	}
	return false
}

// AddFile, AddDir and AddSymlink add entries owned by uid:gid with permission bits perm.
func (a *Archive) AddFile(name string, data []byte, perm, uid, gid uint32) error {
	return a.Add(Entry{Name: name, Mode: ModeRegular | perm&ModePerm, UID: uid, GID: gid, Data: data})
}

func (a *Archive) AddDir(name string, perm, uid, gid uint32) error {
	return a.Add(Entry{Name: name, Mode: ModeDir | perm&ModePerm, UID: uid, GID: gid})
}

func (a *Archive) AddSymlink(name, target string, uid, gid uint32) error {
	return a.Add(Entry{Name: name, Mode: ModeSymlink | 0o777, UID: uid, GID: gid, Data: []byte(target)})
}

// Files lists the member names (trailers left out), in archive order.
func (a *Archive) Files() []string {
	var names []string
	for _, e := range a.Entries {
		if !e.IsTrailer() {
			names = append(names, e.Name)
		}
	}
	return names
}

// New returns an empty newc archive (just a trailer) in mkbootfs style, for building a ramdisk.
func New() *Archive {
	a := &Archive{magic: MagicNewc, changed: true}
	a.Entries = []*Entry{{Name: Trailer, Nlink: 1, magic: MagicNewc, dirty: true}}
	return a
}
