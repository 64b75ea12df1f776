package tree

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"
)

// Xattr names Android cares about.
const (
	XattrSELinux    = "security.selinux"
	XattrCapability = "security.capability"
)

// Meta is everything about one entry except its contents.
type Meta struct {
	// Mode is the Go file mode: type bits (fs.ModeDir, fs.ModeSymlink, fs.ModeDevice|fs.ModeCharDevice,
	// fs.ModeNamedPipe, fs.ModeSocket), permission bits and fs.ModeSetuid/ModeSetgid/ModeSticky.
	Mode    fs.FileMode
	UID     uint32
	GID     uint32
	ModTime time.Time
	// Size of a regular file's contents (0 for other types).
	Size int64
	// Xattrs holds raw extended attribute values, e.g. "security.selinux" → "u:object_r:system_file:s0\x00".
	Xattrs map[string][]byte
	// Target is a symlink's target.
	Target string
	// Rdev is a device node's number in Linux encoding (major<<8 | minor for small numbers; see Mkdev).
	Rdev uint64
	// Link identifies hard links: regular files in one tree with the same non-zero Link are one inode.
	Link uint64
}

// SELinux returns the SELinux label without the trailing NUL some tools store.
func (m Meta) SELinux() string {
	return strings.TrimRight(string(m.Xattrs[XattrSELinux]), "\x00")
}

// SetSELinux stores label with a trailing NUL, as the kernel and mke2fs/e2fsdroid write it.
func (m *Meta) SetSELinux(label string) {
	m.setXattr(XattrSELinux, []byte(label+"\x00"))
}

func (m *Meta) setXattr(name string, v []byte) {
	x := make(map[string][]byte, len(m.Xattrs)+1)
	for k, val := range m.Xattrs {
		x[k] = val
	}
	x[name] = v
	m.Xattrs = x
}

// Capabilities returns the permitted capability mask from security.capability (0 when absent).
func (m Meta) Capabilities() uint64 {
	caps, _ := DecodeCapability(m.Xattrs[XattrCapability])
	return caps
}

// SetCapabilities stores caps as a VFS_CAP_REVISION_2 security.capability value with the effective bit set,
// as AOSP's fs_config does; 0 removes the attribute.
func (m *Meta) SetCapabilities(caps uint64) {
	if caps == 0 {
		if _, ok := m.Xattrs[XattrCapability]; ok {
			x := make(map[string][]byte, len(m.Xattrs))
			for k, v := range m.Xattrs {
				if k != XattrCapability {
					x[k] = v
				}
			}
			m.Xattrs = x
		}
		return
	}
	m.setXattr(XattrCapability, EncodeCapability(caps))
}

// EncodeCapability encodes a permitted mask as a 20-byte vfs_cap_data (revision 2, effective).
func EncodeCapability(caps uint64) []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000001)
	binary.LittleEndian.PutUint32(b[4:], uint32(caps))
	binary.LittleEndian.PutUint32(b[12:], uint32(caps>>32))
	return b
}

// DecodeCapability decodes the permitted mask of a vfs_cap_data value (revisions 1, 2 and 3).
func DecodeCapability(b []byte) (uint64, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if len(b) < 12 {
		return 0, fmt.Errorf("security.capability: %d bytes is too short", len(b))
	}
	rev := binary.LittleEndian.Uint32(b) & 0xff000000
	caps := uint64(binary.LittleEndian.Uint32(b[4:]))
	if rev >= 0x02000000 {
		if len(b) < 20 {
			return 0, fmt.Errorf("security.capability: revision 2+ needs 20 bytes, have %d", len(b))
		}
		caps |= uint64(binary.LittleEndian.Uint32(b[12:])) << 32
	}
	return caps, nil
}

// UnixMode returns the mode as Linux st_mode bits (S_IFMT type and 07777 permissions).
func (m Meta) UnixMode() uint32 { return UnixMode(m.Mode) }

// UnixMode converts a Go file mode to Linux st_mode bits.
func UnixMode(mode fs.FileMode) uint32 {
	u := uint32(mode.Perm())
	switch {
	case mode&fs.ModeDir != 0:
		u |= 0o040000
	case mode&fs.ModeSymlink != 0:
		u |= 0o120000
	case mode&fs.ModeCharDevice != 0:
		u |= 0o020000
	case mode&fs.ModeDevice != 0:
		u |= 0o060000
	case mode&fs.ModeNamedPipe != 0:
		u |= 0o010000
	case mode&fs.ModeSocket != 0:
		u |= 0o140000
	default:
		u |= 0o100000
	}
	if mode&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if mode&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if mode&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// FileMode converts Linux st_mode bits to a Go file mode.
func FileMode(u uint32) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	switch u & 0o170000 {
	case 0o040000:
		m |= fs.ModeDir
	case 0o120000:
		m |= fs.ModeSymlink
	case 0o020000:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case 0o060000:
		m |= fs.ModeDevice
	case 0o010000:
		m |= fs.ModeNamedPipe
	case 0o140000:
		m |= fs.ModeSocket
	}
	if u&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if u&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if u&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// Mkdev encodes a device number as Linux's new_encode_dev does.
func Mkdev(major, minor uint32) uint64 {
	return uint64(minor&0xff) | uint64(major&0xfff)<<8 | uint64(minor&^0xff)<<12
}

// SplitDev decodes a device number made by Mkdev (Linux's new_decode_dev).
func SplitDev(dev uint64) (major, minor uint32) {
	return uint32((dev & 0xfff00) >> 8), uint32((dev & 0xff) | ((dev >> 12) & 0xfff00))
}

// Tree is a file tree with Android metadata. Names are io/fs names ("." is the root, no leading slash).
type Tree interface {
	fs.FS
	// Meta returns an entry's metadata without following symlinks.
	Meta(name string) (Meta, error)
}

// ErrEscape reports a path that would leave the tree ("..", absolute, or through a symlink).
var ErrEscape = errors.New("path escapes the tree")

// Clean turns a user path ("/system/etc/hosts", "etc/hosts", ".") into an io/fs name, refusing escapes.
func Clean(p string) (string, error) {
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return ".", nil
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "", fmt.Errorf("%q: %w", p, ErrEscape)
		}
	}
	c := path.Clean(p)
	if !fs.ValidPath(c) {
		return "", fmt.Errorf("%q: invalid path: %w", p, ErrEscape)
	}
	return c, nil
}

// Walk calls fn for every entry of t in lexical order, root first, with its metadata.
func Walk(t Tree, fn func(name string, m Meta) error) error {
	return fs.WalkDir(t, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		m, err := t.Meta(name)
		if err != nil {
			return err
		}
		return fn(name, m)
	})
}

// DirentType maps a Linux directory-entry file type (ext4's and EROFS's FT_* codes: 1 regular, 2 dir,
// 3 char, 4 block, 5 fifo, 6 socket, 7 symlink) to Go's type bits; ok is false for unknown codes.
func DirentType(ft uint8) (mode fs.FileMode, ok bool) {
	switch ft {
	case 1:
		return 0, true
	case 2:
		return fs.ModeDir, true
	case 3:
		return fs.ModeDevice | fs.ModeCharDevice, true
	case 4:
		return fs.ModeDevice, true
	case 5:
		return fs.ModeNamedPipe, true
	case 6:
		return fs.ModeSocket, true
	case 7:
		return fs.ModeSymlink, true
	}
	return 0, false
}
