package ext4

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/safeio"
)

const (
	maxExtentDepth = 5
	maxXattrValue  = 64 << 10
	maxSymlink     = 64 << 10
)

// FS is an ext2/3/4 filesystem read from an image. It implements tree.Tree, fs.ReadDirFS, fs.StatFS and
// fs.ReadLinkFS and is safe for concurrent use. Symlinks are never followed: Open and Stat describe the
// link itself.
type FS struct {
	img    image.Image
	sb     *superblock
	bs     int64
	groups []groupDesc
	seed   uint32

	mu   sync.Mutex
	dirs map[uint32]*dirList
}

type dirent struct {
	name  string
	ino   uint32
	ftype uint8
}

type dirList struct {
	ents  []dirent // sorted by name
	index map[string]int
}

// Open reads and validates the superblock and group descriptors of an ext2/3/4 image.
func Open(img image.Image) (*FS, error) {
	if img.Size() < sbOffset+sbSize {
		return nil, errf(-1, "image of %d bytes is too small for an ext4 superblock", img.Size())
	}
	raw := make([]byte, sbSize)
	if _, err := img.ReadAt(raw, sbOffset); err != nil {
		return nil, fmt.Errorf("ext4: reading superblock: %w", err)
	}
	if le.Uint16(raw[56:]) != magic {
		return nil, errf(sbOffset+56, "bad magic %#04x, not an ext2/3/4 filesystem", le.Uint16(raw[56:]))
	}
	sb := parseSuperblock(raw)
	f := &FS{img: img, sb: sb, dirs: map[uint32]*dirList{}}
	if err := f.validate(raw); err != nil {
		return nil, err
	}
	if err := f.readGroups(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *FS) validate(raw []byte) error {
	sb := f.sb
	if sb.LogBlockSize > 6 {
		return errf(sbOffset+24, "block size 2^%d KiB is not supported", sb.LogBlockSize)
	}
	f.bs = sb.blockSize()
	if sb.csum() {
		if sb.ChecksumType != 1 {
			return errf(sbOffset+373, "unknown checksum type %d", sb.ChecksumType)
		}
		if want := crc32c(^uint32(0), raw[:0x3FC]); want != sb.Checksum {
			return errf(sbOffset+0x3FC, "superblock checksum %#08x does not match its contents (%#08x): the image is corrupt", sb.Checksum, want)
		}
		f.seed = sb.csumSeed()
	}
	if u := sb.Incompat &^ incompatSupported; u != 0 {
		return errf(sbOffset+96, "unsupported incompatible features %#x (%s)", u, strings.Join((&superblock{Incompat: u}).features(), ","))
	}
	if sb.BlocksPerGroup == 0 || sb.BlocksPerGroup > 8*uint32(f.bs) && sb.ROCompat&roBigalloc == 0 {
		return errf(sbOffset+32, "blocks per group %d is invalid for %d-byte blocks", sb.BlocksPerGroup, f.bs)
	}
	if sb.InodesPerGroup == 0 || sb.InodesPerGroup > 8*uint32(f.bs) {
		return errf(sbOffset+40, "inodes per group %d is invalid", sb.InodesPerGroup)
	}
	is := int64(sb.InodeSize)
	if is < 128 || is > f.bs || is&(is-1) != 0 {
		return errf(sbOffset+88, "inode size %d is invalid", is)
	}
	if sb.BlocksCount == 0 || uint64(sb.FirstDataBlock) >= sb.BlocksCount {
		return errf(sbOffset+4, "block count %d (first data block %d) is invalid", sb.BlocksCount, sb.FirstDataBlock)
	}
	if sb.BlocksCount > uint64(f.img.Size()/f.bs) {
		return errf(sbOffset+4, "filesystem has %d blocks of %d bytes but the image holds only %d bytes (truncated image?)", sb.BlocksCount, f.bs, f.img.Size())
	}
	groups := sb.groupCount()
	if uint64(sb.InodesCount) > groups*uint64(sb.InodesPerGroup) || sb.InodesCount < rootIno {
		return errf(sbOffset, "inode count %d does not fit %d groups of %d inodes", sb.InodesCount, groups, sb.InodesPerGroup)
	}
	// Every group's inode table lives in the image: inodes cannot outnumber the bytes holding them.
	if uint64(sb.InodesCount)*uint64(is) > uint64(f.img.Size()) {
		return errf(sbOffset, "inode count %d needs more inode table space than the %d-byte image has", sb.InodesCount, f.img.Size())
	}
	if sb.is64() && sb.DescSize != 0 && (sb.DescSize < 64 || sb.DescSize > 1024 || sb.DescSize&(sb.DescSize-1) != 0) {
		return errf(sbOffset+254, "group descriptor size %d is invalid", sb.DescSize)
	}
	if sb.FirstIno < firstIno && sb.RevLevel > 0 {
		return errf(sbOffset+84, "first inode %d is invalid", sb.FirstIno)
	}
	return nil
}

func (f *FS) readGroups() error {
	sb := f.sb
	n := sb.groupCount()
	ds := int64(sb.descSize())
	perBlock := uint64(f.bs / ds)
	f.groups = make([]groupDesc, 0, safeio.SliceCap(n, 64))
	var buf []byte
	var bufBlock uint64 = ^uint64(0)
	for g := uint64(0); g < n; g++ {
		blk := f.descBlock(g / perBlock)
		if blk >= sb.BlocksCount {
			return errf(-1, "group descriptor block %d lies past the end of the filesystem", blk)
		}
		if blk != bufBlock {
			b, err := safeio.ReadDataAt(f.img, uint64(f.bs), int64(blk)*f.bs)
			if err != nil {
				return fmt.Errorf("ext4: reading group descriptors: %w", err)
			}
			buf, bufBlock = b, blk
		}
		off := int64(g%perBlock) * ds
		raw := buf[off : off+ds]
		gd := parseGroupDesc(raw, ds >= 64)
		pos := int64(blk)*f.bs + off
		if sb.csum() {
			if c := groupDescCsum(f.seed, uint32(g), raw); c != gd.Checksum {
				return errf(pos+30, "group %d descriptor checksum %#04x does not match (%#04x): the image is corrupt", g, gd.Checksum, c)
			}
		}
		itBlocks := (uint64(sb.InodesPerGroup)*uint64(sb.InodeSize) + uint64(f.bs) - 1) / uint64(f.bs)
		if gd.InodeTable < uint64(sb.FirstDataBlock) || gd.InodeTable+itBlocks > sb.BlocksCount {
			return errf(pos+8, "group %d inode table at block %d lies outside the filesystem", g, gd.InodeTable)
		}
		f.groups = append(f.groups, gd)
	}
	return nil
}

// descBlock returns the block holding group descriptor block i (meta_bg aware).
func (f *FS) descBlock(i uint64) uint64 {
	sb := f.sb
	first := uint64(sb.FirstDataBlock)
	if sb.Incompat&incompatMetaBG == 0 || i < uint64(sb.FirstMetaBG) {
		return first + 1 + i
	}
	perBlock := uint64(f.bs / int64(sb.descSize()))
	g := i * perBlock
	b := first + g*uint64(sb.BlocksPerGroup)
	if sb.hasSuper(g) {
		b++
	}
	return b
}

// inode is a decoded on-disk inode.
type inode struct {
	ino     uint32
	raw     []byte
	mode    uint32
	uid     uint32
	gid     uint32
	size    int64
	links   uint16
	flags   uint32
	fileACL uint64
	blocks  uint64 // in 512-byte sectors
	mtime   time.Time
	extra   int // i_extra_isize
}

func (f *FS) readInode(ino uint32) (*inode, error) {
	sb := f.sb
	if ino < 1 || ino > sb.InodesCount {
		return nil, errf(-1, "inode number %d out of range 1..%d", ino, sb.InodesCount)
	}
	g := (ino - 1) / sb.InodesPerGroup
	idx := int64((ino - 1) % sb.InodesPerGroup)
	if int(g) >= len(f.groups) {
		return nil, errf(-1, "inode %d is in group %d of %d", ino, g, len(f.groups))
	}
	is := int64(sb.InodeSize)
	off := int64(f.groups[g].InodeTable)*f.bs + idx*is
	raw := make([]byte, is)
	if _, err := f.img.ReadAt(raw, off); err != nil {
		return nil, errf(off, "reading inode %d: %v", ino, err)
	}
	in := &inode{ino: ino, raw: raw}
	in.mode = uint32(le.Uint16(raw[0:]))
	in.uid = uint32(le.Uint16(raw[2:])) | uint32(le.Uint16(raw[120:]))<<16
	in.gid = uint32(le.Uint16(raw[24:])) | uint32(le.Uint16(raw[122:]))<<16
	in.size = int64(le.Uint32(raw[4:])) | int64(le.Uint32(raw[108:]))<<32
	in.links = le.Uint16(raw[26:])
	in.flags = le.Uint32(raw[32:])
	in.fileACL = uint64(le.Uint32(raw[104:])) | uint64(le.Uint16(raw[118:]))<<32
	in.blocks = uint64(le.Uint32(raw[28:]))
	if sb.ROCompat&roHugeFile != 0 {
		in.blocks |= uint64(le.Uint16(raw[116:])) << 32
		if in.flags&flagHugeFile != 0 {
			in.blocks *= uint64(f.bs / 512)
		}
	}
	if in.size < 0 {
		return nil, errf(off+4, "inode %d has a negative size", ino)
	}
	if is > 128 {
		in.extra = int(le.Uint16(raw[128:]))
		if in.extra&3 != 0 || 128+int64(in.extra) > is {
			return nil, errf(off+128, "inode %d extra size %d is invalid", ino, in.extra)
		}
	}
	if sb.csum() && sb.CreatorOS == 0 {
		want := inodeCsum(f.seed, ino, raw)
		got := uint32(le.Uint16(raw[124:]))
		if is > 128 && in.extra >= 4 {
			got |= uint32(le.Uint16(raw[130:])) << 16
		} else {
			want &= 0xFFFF
		}
		if got != want && !safeio.AllZero(raw) {
			return nil, errf(off+124, "inode %d checksum %#08x does not match (%#08x): the image is corrupt", ino, got, want)
		}
	}
	secs := int64(int32(le.Uint32(raw[16:])))
	var nsec int64
	if in.extra >= 12 { // i_mtime_extra present
		ex := le.Uint32(raw[136:])
		secs += int64(ex&3) << 32
		nsec = int64(ex >> 2)
		if nsec > 999999999 {
			nsec = 0
		}
	}
	in.mtime = time.Unix(secs, nsec).UTC()
	return in, nil
}

func (in *inode) isDir() bool     { return in.mode&0o170000 == 0o040000 }
func (in *inode) isReg() bool     { return in.mode&0o170000 == 0o100000 }
func (in *inode) isSymlink() bool { return in.mode&0o170000 == 0o120000 }
func (in *inode) isDev() bool {
	t := in.mode & 0o170000
	return t == 0o020000 || t == 0o060000
}
func (in *inode) iblock() []byte { return in.raw[40:100] }

// extent maps n logical blocks starting at lblk to physical blocks from pblk (pblk 0 with zero: a hole).
type extent struct {
	lblk, pblk, n uint64
	zero          bool // unwritten extent: reads as zeros
}

// mapping returns the inode's block mapping, sorted by logical block, validated against the image.
func (f *FS) mapping(in *inode) ([]extent, error) {
	fileBlocks := (uint64(in.size) + uint64(f.bs) - 1) / uint64(f.bs)
	w := &mapWalker{f: f, in: in, limit: f.sb.BlocksCount}
	var err error
	if in.flags&flagExtents != 0 {
		err = w.extentNode(in.iblock(), 0, -1)
	} else {
		err = w.blockMap(fileBlocks)
	}
	if err != nil {
		return nil, err
	}
	return w.out, nil
}

type mapWalker struct {
	f     *FS
	in    *inode
	limit uint64 // blocks in the filesystem
	out   []extent
	next  uint64 // first logical block not yet mapped (order check)
	total uint64 // physical blocks mapped so far
	reads uint64 // tree blocks read
}

func (w *mapWalker) add(e extent) error {
	if e.n == 0 {
		return nil
	}
	if e.lblk < w.next {
		return errf(-1, "inode %d: extents overlap or are out of order at logical block %d", w.in.ino, e.lblk)
	}
	if !e.zero && (e.pblk < uint64(w.f.sb.FirstDataBlock) || e.pblk >= w.limit || e.n > w.limit-e.pblk) {
		return errf(-1, "inode %d: extent at block %d (+%d) points past the end of the filesystem (%d blocks)", w.in.ino, e.pblk, e.n, w.limit)
	}
	w.total += e.n
	if w.total > w.limit {
		return errf(-1, "inode %d maps more blocks than the filesystem has", w.in.ino)
	}
	w.next = e.lblk + e.n
	if k := len(w.out); k > 0 {
		p := &w.out[k-1]
		if !p.zero && !e.zero && p.lblk+p.n == e.lblk && p.pblk+p.n == e.pblk {
			p.n += e.n
			return nil
		}
	}
	w.out = append(w.out, e)
	return nil
}

func (w *mapWalker) extentNode(b []byte, level int, wantDepth int) error {
	ino := w.in.ino
	if len(b) < 12 || le.Uint16(b[0:]) != extentMagic {
		return errf(-1, "inode %d: bad extent header", ino)
	}
	entries := int(le.Uint16(b[2:]))
	max := int(le.Uint16(b[4:]))
	depth := int(le.Uint16(b[6:]))
	if depth > maxExtentDepth || (wantDepth >= 0 && depth != wantDepth) {
		return errf(-1, "inode %d: extent tree depth %d is invalid", ino, depth)
	}
	if entries > max || 12+12*max > len(b) {
		return errf(-1, "inode %d: extent node claims %d/%d entries in %d bytes", ino, entries, max, len(b))
	}
	for i := 0; i < entries; i++ {
		e := b[12+12*i:]
		lblk := uint64(le.Uint32(e[0:]))
		if depth == 0 {
			n := uint64(le.Uint16(e[4:]))
			zero := false
			if n > 32768 {
				n -= 32768
				zero = true
			}
			p := uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:]))
			if err := w.add(extent{lblk: lblk, pblk: p, n: n, zero: zero}); err != nil {
				return err
			}
			continue
		}
		if lblk < w.next && i > 0 {
			return errf(-1, "inode %d: extent index out of order", ino)
		}
		p := uint64(le.Uint16(e[8:]))<<32 | uint64(le.Uint32(e[4:]))
		if p < uint64(w.f.sb.FirstDataBlock) || p >= w.limit {
			return errf(-1, "inode %d: extent index block %d lies outside the filesystem", ino, p)
		}
		w.reads++
		if w.reads > w.limit {
			return errf(-1, "inode %d: extent tree is larger than the filesystem", ino)
		}
		child, err := safeio.ReadDataAt(w.f.img, uint64(w.f.bs), int64(p)*w.f.bs)
		if err != nil {
			return errf(int64(p)*w.f.bs, "inode %d: reading extent block: %v", ino, err)
		}
		if err := w.extentNode(child, level+1, depth-1); err != nil {
			return err
		}
	}
	return nil
}

func (w *mapWalker) blockMap(fileBlocks uint64) error {
	ib := w.in.iblock()
	per := uint64(w.f.bs / 4)
	var lblk uint64
	for i := 0; i < 12 && lblk < fileBlocks; i++ {
		if p := uint64(le.Uint32(ib[4*i:])); p != 0 {
			if err := w.add(extent{lblk: lblk, pblk: p, n: 1}); err != nil {
				return err
			}
		}
		lblk++
	}
	span := per
	for level := 1; level <= 3 && lblk < fileBlocks; level++ {
		p := uint64(le.Uint32(ib[4*(11+level):]))
		if p != 0 {
			if err := w.indirect(p, level, lblk, fileBlocks); err != nil {
				return err
			}
		}
		lblk += span
		span *= per
	}
	return nil
}

func (w *mapWalker) indirect(p uint64, level int, lblk, fileBlocks uint64) error {
	if p < uint64(w.f.sb.FirstDataBlock) || p >= w.limit {
		return errf(-1, "inode %d: indirect block %d lies outside the filesystem", w.in.ino, p)
	}
	w.reads++
	if w.reads > w.limit {
		return errf(-1, "inode %d: block map is larger than the filesystem", w.in.ino)
	}
	b, err := safeio.ReadDataAt(w.f.img, uint64(w.f.bs), int64(p)*w.f.bs)
	if err != nil {
		return errf(int64(p)*w.f.bs, "inode %d: reading indirect block: %v", w.in.ino, err)
	}
	per := uint64(w.f.bs / 4)
	span := uint64(1)
	for i := 1; i < level; i++ {
		span *= per
	}
	for i := uint64(0); i < per && lblk < fileBlocks; i++ {
		q := uint64(le.Uint32(b[4*i:]))
		if q != 0 {
			if level == 1 {
				if err := w.add(extent{lblk: lblk, pblk: q, n: 1}); err != nil {
					return err
				}
			} else if err := w.indirect(q, level-1, lblk, fileBlocks); err != nil {
				return err
			}
		}
		lblk += span
	}
	return nil
}

// data returns a reader of an inode's contents (regular files, directories, slow symlinks).
func (f *FS) data(in *inode) (*File, error) {
	fl := &File{fs: f, in: in, size: in.size}
	if in.flags&flagInlineData != 0 {
		inline, err := f.inlineData(in)
		if err != nil {
			return nil, err
		}
		fl.inline = inline
		return fl, nil
	}
	m, err := f.mapping(in)
	if err != nil {
		return nil, err
	}
	fl.ext = m
	return fl, nil
}

func (f *FS) inlineData(in *inode) ([]byte, error) {
	xs, err := f.xattrs(in, true)
	if err != nil {
		return nil, err
	}
	d := append(bytes.Clone(in.iblock()), xs["system.data"]...)
	if in.size > int64(len(d)) {
		return nil, errf(-1, "inode %d: inline data holds %d bytes, size says %d", in.ino, len(d), in.size)
	}
	return d[:in.size], nil
}

// File is an open file of the image. Regular files read straight from the image.
type File struct {
	fs     *FS
	in     *inode
	info   fs.FileInfo
	size   int64
	ext    []extent
	inline []byte
	off    int64
	dir    *tree.DirFile
}

// Stat implements fs.File.
func (fl *File) Stat() (fs.FileInfo, error) { return fl.info, nil }

// Close implements fs.File.
func (fl *File) Close() error { return nil }

// Read implements io.Reader.
func (fl *File) Read(p []byte) (int, error) {
	if fl.dir != nil {
		return fl.dir.Read(p)
	}
	n, err := fl.ReadAt(p, fl.off)
	fl.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadDir implements fs.ReadDirFile for directories.
func (fl *File) ReadDir(n int) ([]fs.DirEntry, error) {
	if fl.dir == nil {
		return nil, &fs.PathError{Op: "readdir", Path: fl.info.Name(), Err: errors.New("not a directory")}
	}
	return fl.dir.ReadDir(n)
}

// Seek implements io.Seeker.
func (fl *File) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += fl.off
	case io.SeekEnd:
		off += fl.size
	}
	if off < 0 {
		return 0, errors.New("ext4: seek before start of file")
	}
	fl.off = off
	return off, nil
}

// Size returns the file's length.
func (fl *File) Size() int64 { return fl.size }

// ReadAt implements io.ReaderAt; holes and unwritten extents read as zeros.
func (fl *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("ext4: negative offset")
	}
	if off >= fl.size {
		return 0, io.EOF
	}
	want := len(p)
	if rem := fl.size - off; int64(want) > rem {
		want = int(rem)
	}
	if fl.inline != nil || fl.ext == nil && fl.in != nil && fl.in.flags&flagInlineData != 0 {
		n := copy(p[:want], fl.inline[off:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	bs := fl.fs.bs
	done := 0
	for done < want {
		pos := off + int64(done)
		lblk := uint64(pos / bs)
		in := pos % bs
		i := sort.Search(len(fl.ext), func(i int) bool { return fl.ext[i].lblk+fl.ext[i].n > lblk })
		var chunk int
		if i == len(fl.ext) || fl.ext[i].lblk > lblk {
			// hole up to the next extent
			end := int64(1 << 62)
			if i < len(fl.ext) {
				end = int64(fl.ext[i].lblk) * bs
			}
			chunk = int(min(int64(want-done), end-pos))
			clear(p[done : done+chunk])
		} else {
			e := fl.ext[i]
			end := int64(e.lblk+e.n) * bs
			chunk = int(min(int64(want-done), end-pos))
			if e.zero {
				clear(p[done : done+chunk])
			} else {
				phys := int64(e.pblk+(lblk-e.lblk))*bs + in
				if _, err := fl.fs.img.ReadAt(p[done:done+chunk], phys); err != nil {
					return done, errf(phys, "reading inode %d: %v", fl.in.ino, err)
				}
			}
		}
		done += chunk
	}
	if done < len(p) {
		return done, io.EOF
	}
	return done, nil
}

// readAll reads a whole inode's contents, bounded by the image size.
func (f *FS) readAll(in *inode, limit int64) ([]byte, error) {
	if in.size > limit || in.size > f.img.Size() {
		return nil, errf(-1, "inode %d: size %d is implausible", in.ino, in.size)
	}
	fl, err := f.data(in)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, in.size)
	if _, err := fl.ReadAt(buf, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return buf, nil
}

// readDir returns the parsed, sorted entries of directory inode ino (cached).
func (f *FS) readDir(in *inode) (*dirList, error) {
	f.mu.Lock()
	d, ok := f.dirs[in.ino]
	f.mu.Unlock()
	if ok {
		return d, nil
	}
	if !in.isDir() {
		return nil, errf(-1, "inode %d is not a directory", in.ino)
	}
	var ents []dirent
	if in.flags&flagInlineData != 0 {
		data, err := f.inlineData(in)
		if err != nil {
			return nil, err
		}
		if len(data) < 4 {
			return nil, errf(-1, "directory inode %d: inline data too short", in.ino)
		}
		if ents, err = f.parseDirBlock(in, data[4:], ents); err != nil {
			return nil, err
		}
	} else {
		data, err := f.readAll(in, 1<<31)
		if err != nil {
			return nil, err
		}
		for off := int64(0); off < int64(len(data)); off += f.bs {
			end := min(off+f.bs, int64(len(data)))
			if ents, err = f.parseDirBlock(in, data[off:end], ents); err != nil {
				return nil, err
			}
		}
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].name < ents[j].name })
	d = &dirList{index: make(map[string]int, len(ents))}
	for _, e := range ents {
		if _, dup := d.index[e.name]; dup {
			continue
		}
		d.index[e.name] = len(d.ents)
		d.ents = append(d.ents, e)
	}
	f.mu.Lock()
	f.dirs[in.ino] = d
	f.mu.Unlock()
	return d, nil
}

func (f *FS) parseDirBlock(in *inode, b []byte, ents []dirent) ([]dirent, error) {
	ft := f.sb.Incompat&incompatFiletype != 0
	for pos := 0; pos+8 <= len(b); {
		ino := le.Uint32(b[pos:])
		rl := int(le.Uint16(b[pos+4:]))
		if f.bs == 65536 && (rl == 65535 || rl == 0) {
			rl = 65536
		}
		nl := int(b[pos+6])
		typ := b[pos+7]
		if !ft {
			nl = int(le.Uint16(b[pos+6:]))
			typ = ftUnknown
		}
		if rl < 8 || rl%4 != 0 || pos+rl > len(b) || 8+nl > rl {
			if ino == 0 && rl == 0 && safeio.AllZero(b[pos:]) {
				break // zero-filled tail of an inline directory
			}
			return nil, errf(-1, "directory inode %d: bad entry at byte %d (rec_len %d, name_len %d)", in.ino, pos, rl, nl)
		}
		if ino != 0 && nl > 0 {
			name := string(b[pos+8 : pos+8+nl])
			if name != "." && name != ".." {
				if strings.ContainsAny(name, "/\x00") {
					return nil, errf(-1, "directory inode %d: invalid name %q", in.ino, name)
				}
				if ino > f.sb.InodesCount {
					return nil, errf(-1, "directory inode %d: entry %q points to inode %d of %d", in.ino, name, ino, f.sb.InodesCount)
				}
				ents = append(ents, dirent{name: name, ino: ino, ftype: typ})
			}
		}
		pos += rl
	}
	return ents, nil
}

// resolve walks name from the root and returns its inode. Directory cycles are reported as errors.
func (f *FS) resolve(op, name string) (*inode, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	in, err := f.readInode(rootIno)
	if err != nil {
		return nil, err
	}
	if !in.isDir() {
		return nil, errf(-1, "root inode is not a directory")
	}
	if name == "." {
		return in, nil
	}
	seen := []uint32{rootIno}
	parts := strings.Split(name, "/")
	for i, p := range parts {
		if !in.isDir() {
			if in.isSymlink() {
				return nil, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%s is a symlink: %w", path.Join(parts[:i]...), tree.ErrEscape)}
			}
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		d, err := f.readDir(in)
		if err != nil {
			return nil, err
		}
		k, ok := d.index[p]
		if !ok {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		ino := d.ents[k].ino
		if in, err = f.readInode(ino); err != nil {
			return nil, err
		}
		if in.isDir() {
			for _, s := range seen {
				if s == ino {
					return nil, errf(-1, "directory cycle: %s is inode %d, also one of its parents", path.Join(parts[:i+1]...), ino)
				}
			}
			seen = append(seen, ino)
		}
	}
	return in, nil
}

// meta builds the tree.Meta of an inode.
func (f *FS) meta(in *inode) (tree.Meta, error) {
	m := tree.Meta{Mode: tree.FileMode(in.mode), UID: in.uid, GID: in.gid, ModTime: in.mtime}
	xs, err := f.xattrs(in, false)
	if err != nil {
		return tree.Meta{}, err
	}
	if len(xs) > 0 {
		m.Xattrs = xs
	}
	switch {
	case in.isReg():
		m.Size = in.size
		if in.links > 1 {
			m.Link = uint64(in.ino)
		}
	case in.isSymlink():
		t, err := f.readlink(in)
		if err != nil {
			return tree.Meta{}, err
		}
		m.Target = t
	case in.isDev():
		ib := in.iblock()
		if old := le.Uint32(ib[0:]); old != 0 {
			m.Rdev = tree.Mkdev((old>>8)&0xff, old&0xff)
		} else {
			nw := le.Uint32(ib[4:])
			m.Rdev = tree.Mkdev((nw&0xfff00)>>8, (nw&0xff)|((nw>>12)&0xfff00))
		}
	}
	return m, nil
}

func (f *FS) readlink(in *inode) (string, error) {
	if in.size > maxSymlink {
		return "", errf(-1, "symlink inode %d: target of %d bytes is too long", in.ino, in.size)
	}
	eaSectors := uint64(0)
	if in.fileACL != 0 {
		eaSectors = uint64(f.bs / 512)
	}
	if in.flags&(flagInlineData|flagExtents) == 0 && in.size < 60 && in.blocks <= eaSectors {
		return string(in.iblock()[:in.size]), nil
	}
	b, err := f.readAll(in, maxSymlink)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// xattrs returns an inode's extended attributes; system.data (inline data) only when internal is set.
func (f *FS) xattrs(in *inode, internal bool) (map[string][]byte, error) {
	out := map[string][]byte{}
	is := len(in.raw)
	if is > 128 {
		start := 128 + in.extra
		if start+4 <= is && le.Uint32(in.raw[start:]) == xattrMagic {
			region := in.raw[start+4:]
			if err := f.parseXattrs(in, region, region, out, internal); err != nil {
				return nil, err
			}
		}
	}
	if in.fileACL != 0 {
		if in.fileACL < uint64(f.sb.FirstDataBlock) || in.fileACL >= f.sb.BlocksCount {
			return nil, errf(-1, "inode %d: xattr block %d lies outside the filesystem", in.ino, in.fileACL)
		}
		off := int64(in.fileACL) * f.bs
		b, err := safeio.ReadDataAt(f.img, uint64(f.bs), off)
		if err != nil {
			return nil, errf(off, "inode %d: reading xattr block: %v", in.ino, err)
		}
		if le.Uint32(b[0:]) != xattrMagic || le.Uint32(b[8:]) != 1 {
			return nil, errf(off, "inode %d: bad xattr block header", in.ino)
		}
		if err := f.parseXattrs(in, b[32:], b, out, internal); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parseXattrs decodes entries starting at ents; value offsets are relative to base.
func (f *FS) parseXattrs(in *inode, ents, base []byte, out map[string][]byte, internal bool) error {
	for pos := 0; pos+4 <= len(ents) && le.Uint32(ents[pos:]) != 0; {
		if pos+16 > len(ents) {
			return errf(-1, "inode %d: truncated xattr entry", in.ino)
		}
		nl := int(ents[pos])
		idx := ents[pos+1]
		voff := int(le.Uint16(ents[pos+2:]))
		vino := le.Uint32(ents[pos+4:])
		vsize := int(le.Uint32(ents[pos+8:]))
		if pos+16+nl > len(ents) {
			return errf(-1, "inode %d: xattr name runs past its region", in.ino)
		}
		name := string(ents[pos+16 : pos+16+nl])
		pos += (16 + nl + 3) &^ 3
		if vsize > maxXattrValue {
			return errf(-1, "inode %d: xattr %q value of %d bytes is too large", in.ino, name, vsize)
		}
		var val []byte
		if vino != 0 {
			if f.sb.Incompat&incompatEAInode == 0 {
				return errf(-1, "inode %d: xattr %q stored in inode %d without the ea_inode feature", in.ino, name, vino)
			}
			vin, err := f.readInode(vino)
			if err != nil {
				return err
			}
			if vin.flags&flagEAInode == 0 || vin.ino == in.ino {
				return errf(-1, "inode %d: xattr %q points to inode %d, which is not an xattr inode", in.ino, name, vino)
			}
			if val, err = f.readAll(vin, maxXattrValue); err != nil {
				return err
			}
			if len(val) > vsize {
				val = val[:vsize]
			}
		} else {
			if voff+vsize > len(base) {
				return errf(-1, "inode %d: xattr %q value runs past its region", in.ino, name)
			}
			val = bytes.Clone(base[voff : voff+vsize])
		}
		prefix, ok := xattrPrefixes[idx]
		if !ok && idx != 0 {
			continue // an index no kernel exposes (e.g. lustre, hurd)
		}
		full := prefix + name
		if full == "system.data" && !internal {
			continue
		}
		if idx == 2 || idx == 3 {
			v, err := aclFromDisk(val)
			if err != nil {
				return errf(-1, "inode %d: %s: %v", in.ino, full, err)
			}
			val = v
		}
		out[full] = val
	}
	return nil
}

// POSIX ACL encodings: ext4 stores a compact form (version 1, 4-byte entries for the owner/group/mask/other
// tags); the xattr interface (getfattr, tree.Meta) uses version 2 with 8-byte entries.
const (
	aclUser  = 2
	aclGroup = 8
)

func aclFromDisk(b []byte) ([]byte, error) {
	if len(b) < 4 || le.Uint32(b) != 1 {
		return nil, errors.New("bad ACL header")
	}
	out := make([]byte, 4, 4+2*len(b))
	le.PutUint32(out, 2)
	for p := 4; p < len(b); {
		if p+4 > len(b) {
			return nil, errors.New("truncated ACL entry")
		}
		tag := le.Uint16(b[p:])
		id := uint32(0xFFFFFFFF)
		n := 4
		if tag == aclUser || tag == aclGroup {
			if p+8 > len(b) {
				return nil, errors.New("truncated ACL entry")
			}
			id = le.Uint32(b[p+4:])
			n = 8
		}
		var e [8]byte
		copy(e[:4], b[p:p+4])
		le.PutUint32(e[4:], id)
		out = append(out, e[:]...)
		p += n
	}
	return out, nil
}

func aclToDisk(b []byte) ([]byte, error) {
	if len(b) < 4 || le.Uint32(b) != 2 || (len(b)-4)%8 != 0 {
		return nil, errors.New("bad POSIX ACL xattr (want version 2)")
	}
	out := make([]byte, 4, len(b))
	le.PutUint32(out, 1)
	for p := 4; p < len(b); p += 8 {
		tag := le.Uint16(b[p:])
		if tag == aclUser || tag == aclGroup {
			out = append(out, b[p:p+8]...)
		} else {
			out = append(out, b[p:p+4]...)
		}
	}
	return out, nil
}

// Meta implements tree.Tree.
func (f *FS) Meta(name string) (tree.Meta, error) {
	in, err := f.resolve("meta", name)
	if err != nil {
		return tree.Meta{}, err
	}
	return f.meta(in)
}

// Xattrs returns the extended attributes of name (nil map when it has none).
func (f *FS) Xattrs(name string) (map[string][]byte, error) {
	m, err := f.Meta(name)
	return m.Xattrs, err
}

// Open implements fs.FS.
func (f *FS) Open(name string) (fs.File, error) {
	in, err := f.resolve("open", name)
	if err != nil {
		return nil, err
	}
	m, err := f.meta(in)
	if err != nil {
		return nil, err
	}
	info := tree.NewFileInfo(path.Base(name), m)
	if in.isDir() {
		ents, err := f.readDirEntries(name, in)
		if err != nil {
			return nil, err
		}
		return &File{fs: f, in: in, info: info, dir: tree.NewDirFile(info, ents)}, nil
	}
	if !in.isReg() {
		return &File{fs: f, in: in, info: info, inline: []byte{}}, nil
	}
	fl, err := f.data(in)
	if err != nil {
		return nil, err
	}
	fl.info = info
	return fl, nil
}

// ReadDir implements fs.ReadDirFS.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	in, err := f.resolve("readdir", name)
	if err != nil {
		return nil, err
	}
	if !in.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return f.readDirEntries(name, in)
}

func (f *FS) readDirEntries(name string, in *inode) ([]fs.DirEntry, error) {
	d, err := f.readDir(in)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, len(d.ents))
	for i, e := range d.ents {
		out[i] = &dirEntry{fs: f, name: e.name, ino: e.ino, ftype: e.ftype}
	}
	return out, nil
}

type dirEntry struct {
	fs    *FS
	name  string
	ino   uint32
	ftype uint8
}

func (d *dirEntry) Name() string { return d.name }
func (d *dirEntry) IsDir() bool  { return d.Type().IsDir() }
func (d *dirEntry) Type() fs.FileMode {
	if m, ok := tree.DirentType(d.ftype); ok {
		return m
	}
	in, err := d.fs.readInode(d.ino)
	if err != nil {
		return 0
	}
	return tree.FileMode(in.mode).Type()
}
func (d *dirEntry) Info() (fs.FileInfo, error) {
	in, err := d.fs.readInode(d.ino)
	if err != nil {
		return nil, err
	}
	m, err := d.fs.meta(in)
	if err != nil {
		return nil, err
	}
	return tree.NewFileInfo(d.name, m), nil
}
func (d *dirEntry) String() string { return fs.FormatDirEntry(d) }

// Stat implements fs.StatFS (symlinks are not followed).
func (f *FS) Stat(name string) (fs.FileInfo, error) { return f.Lstat(name) }

// Lstat implements fs.ReadLinkFS.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	m, err := f.Meta(name)
	if err != nil {
		return nil, err
	}
	return tree.NewFileInfo(path.Base(name), m), nil
}

// ReadLink implements fs.ReadLinkFS.
func (f *FS) ReadLink(name string) (string, error) {
	in, err := f.resolve("readlink", name)
	if err != nil {
		return "", err
	}
	if !in.isSymlink() {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: errors.New("not a symlink")}
	}
	return f.readlink(in)
}

// Info is a JSON-able summary of the superblock, for inspect.
type Info struct {
	BlockSize      int64     `json:"block_size"`
	BlocksCount    uint64    `json:"blocks_count"`
	FreeBlocks     uint64    `json:"free_blocks"`
	InodesCount    uint32    `json:"inodes_count"`
	FreeInodes     uint32    `json:"free_inodes"`
	InodeSize      uint16    `json:"inode_size"`
	BlocksPerGroup uint32    `json:"blocks_per_group"`
	InodesPerGroup uint32    `json:"inodes_per_group"`
	Groups         int       `json:"groups"`
	Features       []string  `json:"features"`
	VolumeName     string    `json:"volume_name"`
	UUID           string    `json:"uuid"`
	HashSeed       string    `json:"hash_seed"`
	LastMounted    string    `json:"last_mounted"`
	Created        time.Time `json:"created"`
	WriteTime      time.Time `json:"write_time"`
	State          string    `json:"state"`
	FilesystemSize int64     `json:"filesystem_size"`
}

// Info returns the superblock summary.
func (f *FS) Info() Info {
	sb := f.sb
	state := "clean"
	if sb.State&1 == 0 {
		state = "not clean"
	}
	if sb.State&2 != 0 {
		state = "errors"
	}
	return Info{
		BlockSize: f.bs, BlocksCount: sb.BlocksCount, FreeBlocks: sb.FreeBlocks,
		InodesCount: sb.InodesCount, FreeInodes: sb.FreeInodes, InodeSize: sb.InodeSize,
		BlocksPerGroup: sb.BlocksPerGroup, InodesPerGroup: sb.InodesPerGroup, Groups: len(f.groups),
		Features: sb.features(), VolumeName: safeio.CString(sb.VolumeName[:]), UUID: uuidString(sb.UUID),
		HashSeed: uuidString(sb.HashSeed), LastMounted: safeio.CString(sb.LastMounted[:]),
		Created: time.Unix(int64(sb.MkfsTime), 0).UTC(), WriteTime: time.Unix(int64(sb.Wtime), 0).UTC(),
		State: state, FilesystemSize: int64(sb.BlocksCount) * f.bs,
	}
}

func uuidString(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

var (
	_ tree.Tree     = (*FS)(nil)
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
	_ fs.ReadLinkFS = (*FS)(nil)
	_ io.ReaderAt   = (*File)(nil)
	_ io.Seeker     = (*File)(nil)
)
