package erofs

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/safeio"
)

// FS is an EROFS image opened for reading. It implements tree.Tree, fs.ReadDirFS, fs.StatFS and
// fs.ReadLinkFS, and is safe for concurrent use.
type FS struct {
	img      image.Image
	size     int64
	sb       superblock
	blkbits  uint
	blksz    int64
	prefixes []longPrefix

	mu       sync.Mutex
	dirCache map[uint64][]dirent
}

type longPrefix struct {
	base  uint8
	infix string
}

type dirent struct {
	name  string
	nid   uint64
	ftype uint8
}

// maxDirCache bounds how many directories' entries are kept decoded.
const maxDirCache = 64

// maxDirBytes bounds a directory's size (about a million entries).
const maxDirBytes = 64 << 20

// Open reads the superblock of img and returns the filesystem. Unknown incompatible features, a bad
// checksum or fields pointing outside the image are errors satisfying errors.Is(err, failure.ErrInvalid).
func Open(img image.Image) (*FS, error) {
	size := img.Size()
	if size < superOffset+superSize {
		return nil, errAt(-1, "image of %d bytes is too small for an EROFS superblock", size)
	}
	buf := make([]byte, superSize)
	if _, err := img.ReadAt(buf, superOffset); err != nil {
		return nil, fmt.Errorf("erofs: reading superblock: %w", err)
	}
	if m := binary.LittleEndian.Uint32(buf); m != superMagic {
		return nil, errAt(superOffset, "bad magic %#x (not an EROFS image; want %#x)", m, superMagic)
	}
	sb := parseSuper(buf)
	if sb.blkszbits < 9 || sb.blkszbits > 16 {
		return nil, errAt(superOffset+12, "unsupported block size 2^%d", sb.blkszbits)
	}
	f := &FS{img: img, size: size, sb: sb, blkbits: uint(sb.blkszbits), blksz: 1 << sb.blkszbits,
		dirCache: map[uint64][]dirent{}}
	if unk := sb.incompat &^ supportedIncompat; unk != 0 {
		return nil, errAt(superOffset+80, "unsupported incompatible features %v (image made by a newer mkfs.erofs; "+
			"rebuild it without them)", featureNames(unk, incompatNames))
	}
	if sb.incompat&incompatFragments != 0 || sb.packedNid != 0 {
		return nil, errAt(superOffset+96, "fragments/packed inode are not supported")
	}
	if sb.extraDevices != 0 {
		return nil, errAt(superOffset+86, "multi-device images (%d extra devices) are not supported", sb.extraDevices)
	}
	if sb.dirblkbits != 0 {
		return nil, errAt(superOffset+90, "directory block bits %d are not supported", sb.dirblkbits)
	}
	if sb.compat&compatSBChecksum != 0 {
		n := f.blksz - superOffset
		if n < superSize {
			n = superSize
		}
		blk, err := safeio.ReadDataAt(img, uint64(n), superOffset)
		if err != nil {
			return nil, errAt(superOffset, "superblock block truncated: %v", err)
		}
		if got := sbChecksum(blk); got != sb.checksum {
			return nil, errAt(superOffset+4, "superblock checksum %#08x, want %#08x", got, sb.checksum)
		}
	}
	if int64(sb.metaBlkaddr)<<f.blkbits >= size {
		return nil, errAt(superOffset+40, "metadata start block %d is past the image end", sb.metaBlkaddr)
	}
	if sb.xattrPrefixCnt > 0 {
		if err := f.readLongPrefixes(); err != nil {
			return nil, err
		}
	}
	root, err := f.inode(sb.rootNid)
	if err != nil {
		return nil, fmt.Errorf("erofs: root directory: %w", err)
	}
	if !root.isDir() {
		return nil, errAt(root.off, "root nid %d is not a directory", sb.rootNid)
	}
	return f, nil
}

func (f *FS) readLongPrefixes() error {
	pos := int64(f.sb.xattrPrefixOff) * 4
	for i := 0; i < int(f.sb.xattrPrefixCnt); i++ {
		hdr, err := f.readMeta(pos, 2)
		if err != nil {
			return err
		}
		n := int64(binary.LittleEndian.Uint16(hdr))
		if n < 1 {
			return errAt(pos, "empty long xattr prefix")
		}
		b, err := f.readMeta(pos+2, n)
		if err != nil {
			return err
		}
		if _, ok := xattrPrefixes[b[0]]; !ok {
			return errAt(pos, "long xattr prefix with unknown base index %d", b[0])
		}
		f.prefixes = append(f.prefixes, longPrefix{base: b[0], infix: string(b[1:])})
		pos += (2 + n + 3) &^ 3
	}
	return nil
}

// readMeta reads n bytes at off, which must lie inside the image.
func (f *FS) readMeta(off, n int64) ([]byte, error) {
	if err := safeio.CheckRange(off, n, f.size); err != nil {
		return nil, errAt(off, "metadata outside the image: %v", err)
	}
	b := make([]byte, n)
	if _, err := f.img.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("erofs: read at %#x: %w", off, err)
	}
	return b, nil
}

// Info is a JSON-friendly superblock summary.
type Info struct {
	BlockSize       int64     `json:"block_size"`
	Blocks          uint32    `json:"blocks"`
	Inodes          uint64    `json:"inodes"`
	RootNid         uint64    `json:"root_nid"`
	MetaBlkaddr     uint32    `json:"meta_blkaddr"`
	XattrBlkaddr    uint32    `json:"xattr_blkaddr"`
	FeatureCompat   []string  `json:"feature_compat"`
	FeatureIncompat []string  `json:"feature_incompat"`
	UUID            string    `json:"uuid"`
	VolumeName      string    `json:"volume_name"`
	BuildTime       time.Time `json:"build_time"`
	Compression     []string  `json:"compression_algorithms"`
	LZ4MaxDistance  int       `json:"lz4_max_distance,omitempty"`
}

// Info summarises the superblock.
func (f *FS) Info() Info {
	s := f.sb
	u := hex.EncodeToString(s.uuid[:])
	in := Info{
		BlockSize: f.blksz, Blocks: s.blocks, Inodes: s.inos, RootNid: s.rootNid,
		MetaBlkaddr: s.metaBlkaddr, XattrBlkaddr: s.xattrBlkaddr,
		FeatureCompat: featureNames(s.compat, compatNames), FeatureIncompat: featureNames(s.incompat, incompatNames),
		UUID:        u[0:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:],
		VolumeName:  strings.TrimRight(string(s.volumeName[:]), "\x00"),
		BuildTime:   time.Unix(int64(s.buildTime), int64(s.buildTimeNsec)).UTC(),
		Compression: []string{},
	}
	if s.incompat&incompatComprCfgs != 0 {
		for a := 0; a < 16; a++ {
			if s.u1&(1<<a) != 0 {
				in.Compression = append(in.Compression, algName(a))
			}
		}
	} else {
		in.LZ4MaxDistance = int(s.u1)
		if s.incompat&incompatZeroPadding != 0 {
			in.Compression = append(in.Compression, "lz4")
		}
	}
	return in
}

// inode is a decoded on-disk inode.
type inode struct {
	nid      uint64
	off      int64 // byte offset of the inode
	extended bool
	layout   int
	isize    int64
	xsize    int64
	mode     uint32
	nlink    uint32
	size     int64
	u        uint32
	uid, gid uint32
	mtime    int64
	mtimeNs  uint32
}

func (i *inode) isDir() bool     { return i.mode&0o170000 == 0o040000 }
func (i *inode) isReg() bool     { return i.mode&0o170000 == 0o100000 }
func (i *inode) isSymlink() bool { return i.mode&0o170000 == 0o120000 }
func (i *inode) isDev() bool {
	t := i.mode & 0o170000
	return t == 0o020000 || t == 0o060000
}
func (i *inode) dataEnd() int64 { return i.off + i.isize + i.xsize }
func (i *inode) hasData() bool  { return i.isReg() || i.isDir() || i.isSymlink() }

func (f *FS) inode(nid uint64) (*inode, error) {
	if nid > uint64(f.size)/32 {
		return nil, errAt(-1, "inode nid %d is past the image end", nid)
	}
	off := int64(f.sb.metaBlkaddr)<<f.blkbits + int64(nid)*32
	b, err := f.readMeta(off, 32)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	format := le.Uint16(b)
	in := &inode{nid: nid, off: off, extended: format&1 != 0, layout: int(format>>1) & 7}
	if format>>4 != 0 {
		// newer layouts keep flags above bit 3 (e.g. 48-bit block addresses); not supported here
		return nil, errAt(off, "inode %d: unsupported i_format %#x", nid, format)
	}
	if in.layout > layoutChunkBased {
		return nil, errAt(off, "inode %d: unknown data layout %d", nid, in.layout)
	}
	icount := le.Uint16(b[2:])
	if icount > 0 {
		in.xsize = 12 + 4*(int64(icount)-1)
	}
	in.mode = uint32(le.Uint16(b[4:]))
	if in.extended {
		b, err = f.readMeta(off, 64)
		if err != nil {
			return nil, err
		}
		in.isize = 64
		in.size = int64(le.Uint64(b[8:]))
		in.u = le.Uint32(b[16:])
		in.uid = le.Uint32(b[24:])
		in.gid = le.Uint32(b[28:])
		in.mtime = int64(le.Uint64(b[32:]))
		in.mtimeNs = le.Uint32(b[40:])
		in.nlink = le.Uint32(b[44:])
	} else {
		in.isize = 32
		in.nlink = uint32(le.Uint16(b[6:]))
		in.size = int64(le.Uint32(b[8:]))
		in.mtime = int64(f.sb.buildTime) + int64(le.Uint32(b[12:]))
		in.mtimeNs = f.sb.buildTimeNsec
		in.u = le.Uint32(b[16:])
		in.uid = uint32(le.Uint16(b[24:]))
		in.gid = uint32(le.Uint16(b[26:]))
	}
	if in.size < 0 {
		return nil, errAt(off, "inode %d: negative size", nid)
	}
	if err := safeio.CheckRange(off, in.isize+in.xsize, f.size); err != nil {
		return nil, errAt(off, "inode %d: xattrs run past the image end", nid)
	}
	if !in.hasData() && in.size != 0 && !in.isDev() {
		in.size = 0
	}
	return in, nil
}

// readDir decodes all entries of a directory inode, "." and ".." included.
func (f *FS) readDir(in *inode) ([]dirent, error) {
	f.mu.Lock()
	if d, ok := f.dirCache[in.nid]; ok {
		f.mu.Unlock()
		return d, nil
	}
	f.mu.Unlock()
	if in.size > maxDirBytes {
		return nil, errAt(in.off, "directory nid %d: %d bytes is beyond any real directory", in.nid, in.size)
	}
	d, err := newData(f, in, "")
	if err != nil {
		return nil, err
	}
	var ents []dirent
	buf := make([]byte, f.blksz)
	for pos := int64(0); pos < in.size; pos += f.blksz {
		n := min(f.blksz, in.size-pos)
		blk := buf[:n]
		if _, err := d.ReadAt(blk, pos); err != nil {
			return nil, err
		}
		if n < direntSize {
			return nil, errAt(in.off, "directory nid %d: block at %d too short", in.nid, pos)
		}
		first := int64(binary.LittleEndian.Uint16(blk[8:]))
		if first < direntSize || first%direntSize != 0 || first > n {
			return nil, errAt(in.off, "directory nid %d: bad first name offset %d", in.nid, first)
		}
		cnt := first / direntSize
		for j := int64(0); j < cnt; j++ {
			e := blk[j*direntSize:]
			nameoff := int64(binary.LittleEndian.Uint16(e[8:]))
			end := n
			if j+1 < cnt {
				end = int64(binary.LittleEndian.Uint16(e[direntSize+8:]))
			}
			if nameoff < first || end > n || end <= nameoff {
				return nil, errAt(in.off, "directory nid %d: bad name offsets %d..%d", in.nid, nameoff, end)
			}
			name := blk[nameoff:end]
			if j+1 == cnt {
				if z := indexByte(name, 0); z >= 0 {
					name = name[:z]
				}
			}
			if len(name) == 0 || len(name) > 255 || indexByte(name, '/') >= 0 || indexByte(name, 0) >= 0 {
				return nil, errAt(in.off, "directory nid %d: invalid name %q", in.nid, name)
			}
			ents = append(ents, dirent{name: string(name), nid: binary.LittleEndian.Uint64(e), ftype: e[10]})
		}
	}
	f.mu.Lock()
	if len(f.dirCache) >= maxDirCache {
		clear(f.dirCache)
	}
	f.dirCache[in.nid] = ents
	f.mu.Unlock()
	return ents, nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// maxSymlinkHops bounds symlink resolution in Open and Stat.
const maxSymlinkHops = 40

// resolved is one looked-up name.
type resolved struct {
	name string // the io/fs name finally resolved (after symlinks)
	in   *inode
}

// lookup resolves name. Intermediate symlinks are followed only when follow is set (as is the final one);
// a directory that contains itself along the path is reported as corrupt.
func (f *FS) lookup(op, name string, follow bool) (*resolved, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	hops := 0
	cur := name
restart:
	in, err := f.inode(f.sb.rootNid)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	if cur == "." {
		return &resolved{name: ".", in: in}, nil
	}
	parts := strings.Split(cur, "/")
	seen := []uint64{in.nid}
	for i, p := range parts {
		if !in.isDir() {
			return nil, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%s is not a directory", path.Join(parts[:i]...))}
		}
		ents, err := f.readDir(in)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		nid, ok := findEntry(ents, p)
		if !ok {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		child, err := f.inode(nid)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		last := i == len(parts)-1
		if child.isSymlink() && (follow || !last) {
			if !follow {
				return nil, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%s is a symlink: %w", path.Join(parts[:i+1]...), tree.ErrEscape)}
			}
			hops++
			if hops > maxSymlinkHops {
				return nil, &fs.PathError{Op: op, Path: name, Err: errors.New("too many levels of symbolic links")}
			}
			target, err := f.readLink(child)
			if err != nil {
				return nil, &fs.PathError{Op: op, Path: name, Err: err}
			}
			if strings.HasPrefix(target, "/") {
				return nil, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("absolute symlink %q: %w", target, tree.ErrEscape)}
			}
			joined := path.Join(path.Join(parts[:i]...), target)
			if joined == ".." || strings.HasPrefix(joined, "../") {
				return nil, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("symlink %q: %w", target, tree.ErrEscape)}
			}
			cur = path.Join(joined, path.Join(parts[i+1:]...))
			if cur == "" {
				cur = "."
			}
			goto restart
		}
		if child.isDir() {
			for _, s := range seen {
				if s == child.nid {
					return nil, &fs.PathError{Op: op, Path: name, Err: errAt(child.off, "directory cycle: nid %d contains itself", child.nid)}
				}
			}
			seen = append(seen, child.nid)
		}
		in = child
	}
	return &resolved{name: cur, in: in}, nil
}

// findEntry finds name among a directory's (sorted) entries.
func findEntry(ents []dirent, name string) (uint64, bool) {
	lo, hi := 0, len(ents)
	for lo < hi {
		m := (lo + hi) / 2
		switch c := strings.Compare(ents[m].name, name); {
		case c == 0:
			return ents[m].nid, true
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	for _, e := range ents { // unsorted (hostile or odd) directories still resolve
		if e.name == name {
			return e.nid, true
		}
	}
	return 0, false
}

func (f *FS) readLink(in *inode) (string, error) {
	if in.size > 4096 {
		return "", errAt(in.off, "symlink nid %d: target of %d bytes is too long", in.nid, in.size)
	}
	d, err := newData(f, in, "")
	if err != nil {
		return "", err
	}
	b := make([]byte, in.size)
	if _, err := d.ReadAt(b, 0); err != nil {
		return "", err
	}
	return string(b), nil
}

func (f *FS) meta(in *inode) (tree.Meta, error) {
	m := tree.Meta{
		Mode: tree.FileMode(in.mode), UID: in.uid, GID: in.gid,
		ModTime: time.Unix(in.mtime, int64(in.mtimeNs)).UTC(),
	}
	switch {
	case in.isReg():
		m.Size = in.size
		if in.nlink > 1 {
			m.Link = in.nid
		}
	case in.isSymlink():
		t, err := f.readLink(in)
		if err != nil {
			return tree.Meta{}, err
		}
		m.Target = t
	case in.isDev():
		m.Rdev = uint64(in.u)
	}
	x, err := f.xattrs(in)
	if err != nil {
		return tree.Meta{}, err
	}
	if len(x) > 0 {
		m.Xattrs = x
	}
	return m, nil
}

// Meta implements tree.Tree (symlinks are not followed).
func (f *FS) Meta(name string) (tree.Meta, error) {
	r, err := f.lookup("meta", name, false)
	if err != nil {
		return tree.Meta{}, err
	}
	m, err := f.meta(r.in)
	if err != nil {
		return tree.Meta{}, &fs.PathError{Op: "meta", Path: name, Err: err}
	}
	return m, nil
}

// Xattrs returns name's extended attributes (symlinks are not followed).
func (f *FS) Xattrs(name string) (map[string][]byte, error) {
	r, err := f.lookup("xattrs", name, false)
	if err != nil {
		return nil, err
	}
	x, err := f.xattrs(r.in)
	if err != nil {
		return nil, &fs.PathError{Op: "xattrs", Path: name, Err: err}
	}
	return x, nil
}

func (f *FS) info(name string, in *inode) (fs.FileInfo, error) {
	m, err := f.meta(in)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return tree.NewFileInfo(path.Base(name), m), nil
}

// Stat implements fs.StatFS (symlinks are followed).
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	r, err := f.lookup("stat", name, true)
	if err != nil {
		return nil, err
	}
	return f.info(name, r.in)
}

// Lstat implements fs.ReadLinkFS.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	r, err := f.lookup("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return f.info(name, r.in)
}

// ReadLink implements fs.ReadLinkFS.
func (f *FS) ReadLink(name string) (string, error) {
	r, err := f.lookup("readlink", name, false)
	if err != nil {
		return "", err
	}
	if !r.in.isSymlink() {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	t, err := f.readLink(r.in)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return t, nil
}

// ReadDir implements fs.ReadDirFS: entries sorted by name, without "." and "..".
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	r, err := f.lookup("readdir", name, true)
	if err != nil {
		return nil, err
	}
	return f.dirEntries("readdir", name, r)
}

func (f *FS) dirEntries(op, name string, r *resolved) ([]fs.DirEntry, error) {
	if !r.in.isDir() {
		return nil, &fs.PathError{Op: op, Path: name, Err: errors.New("not a directory")}
	}
	ents, err := f.readDir(r.in)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	out := make([]fs.DirEntry, 0, len(ents))
	for _, e := range ents {
		if e.name == "." || e.name == ".." {
			continue
		}
		out = append(out, &dirEntry{f: f, name: e.name, full: path.Join(r.name, e.name), nid: e.nid, ftype: e.ftype})
	}
	sortEntries(out)
	return out, nil
}

type dirEntry struct {
	f     *FS
	name  string
	full  string
	nid   uint64
	ftype uint8
}

func (d *dirEntry) Name() string { return d.name }
func (d *dirEntry) IsDir() bool  { return d.ftype == ftDir }
func (d *dirEntry) Type() fs.FileMode {
	m, _ := tree.DirentType(d.ftype)
	return m
}
func (d *dirEntry) Info() (fs.FileInfo, error) {
	in, err := d.f.inode(d.nid)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: d.full, Err: err}
	}
	return d.f.info(d.full, in)
}
func (d *dirEntry) String() string { return fs.FormatDirEntry(d) }
