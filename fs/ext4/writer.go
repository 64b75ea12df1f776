package ext4

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/progress"
)

// WriteOptions control Write. The zero value (plus Size or Shrink) makes a modern, journal-less image.
type WriteOptions struct {
	// Size is the filesystem size in bytes (the partition size). Ignored when Shrink is set.
	Size int64
	// Shrink makes the smallest filesystem that holds the tree, plus Margin bytes of free space.
	Shrink bool
	Margin int64
	// Profile is "modern" (default: extents, flex_bg, huge_file, dir_nlink, extra_isize, …) or "legacy"
	// (no flex_bg, no 64bit, no metadata_csum: mountable by 3.x kernels such as Android 4.4's 3.4).
	Profile string
	// Journal adds an empty jbd2 journal (inode 8).
	Journal bool
	// ReadOnly sets the read-only feature: kernels then refuse to mount the image read-write.
	ReadOnly bool
	// MetadataCsum enables metadata_csum (modern profile only; needs kernel 3.18+).
	MetadataCsum bool
	// UUID and HashSeed are written as given (zero values stay zero: deterministic by default).
	UUID, HashSeed [16]byte
	// Timestamp is every inode time and every superblock time. Zero means $SOURCE_DATE_EPOCH, else the epoch;
	// the wall clock is never used.
	Timestamp time.Time
	// VolumeName (16 bytes at most) and MountPoint (the "last mounted on" directory, e.g. "/system").
	VolumeName, MountPoint string
	// InodeSize (default 256) and BlockSize (default 4096; 1024, 2048 or 4096).
	InodeSize, BlockSize int
	// Inodes is the least number of inodes to create (default: what the tree needs, plus spare room for a
	// fixed size).
	Inodes int
	// Workers reading source files in parallel (default: the number of CPUs).
	Workers int
	// Progress reports bytes of file data written.
	Progress progress.Reporter
}

// WriteResult describes the written filesystem.
type WriteResult struct {
	Size        int64  `json:"size"`
	BlockSize   int64  `json:"block_size"`
	BlocksCount uint64 `json:"blocks_count"`
	FreeBlocks  uint64 `json:"free_blocks"`
	InodesCount uint32 `json:"inodes_count"`
	FreeInodes  uint32 `json:"free_inodes"`
	Files       int    `json:"files"`
	DataBytes   int64  `json:"data_bytes"`
}

// ErrNoSpace reports a tree that does not fit the requested size (it is also an ErrInvalid).
var ErrNoSpace = failure.Kinded(failure.ErrInvalid, errors.New("ext4: the tree does not fit"))

// winode is one inode to write.
type winode struct {
	ino      uint32
	name     string // source name (data is read from here)
	meta     tree.Meta
	links    int
	children []wchild // directories: entries in name order
	parent   uint32
	subdirs  int
	dirData  [][]byte // directory blocks (built once)
	nblocks  uint64   // data blocks
	inXattr  []xattr  // stored in the inode
	blkXattr []xattr  // stored in the shared xattr block
	xkey     string
	// layout
	ext    []extent
	tree   []extNode // extent tree blocks (depth ≥ 1)
	root   []byte    // 60-byte i_block
	xblock uint64
}

type wchild struct {
	name string
	ino  uint32
	ft   uint8
}

type xattr struct {
	idx   uint8
	name  string
	value []byte
}

func xattrLess(a, b xattr) bool {
	if a.idx != b.idx {
		return a.idx < b.idx
	}
	if len(a.name) != len(b.name) {
		return len(a.name) < len(b.name)
	}
	return a.name < b.name
}

func xattrEntrySize(x xattr) int { return (16 + len(x.name) + 3) &^ 3 }
func xattrValueSize(x xattr) int { return (len(x.value) + 3) &^ 3 }

type extNode struct {
	blk  uint64
	data []byte
}

type writer struct {
	opt      WriteOptions
	t        tree.Tree
	bs       int64
	isize    int
	csum     bool
	flex     bool
	ts       time.Time
	inodes   []*winode // by inode number - 1 (nil: unused)
	order    []*winode // inodes in creation order
	xblocks  []*xblock
	lastIno  uint32
	dataSize int64
}

type xblock struct {
	key   string
	attrs []xattr
	refs  int
	blk   uint64
}

// Write builds an ext4 filesystem holding t into w. Blocks the filesystem leaves free are not written:
// pass a new (sparse, zeroed) file for deterministic bytes. Files implementing Truncate(int64) are sized.
func Write(ctx context.Context, w io.WriterAt, t tree.Tree, opt WriteOptions) (*WriteResult, error) {
	wr, err := newWriter(t, opt)
	if err != nil {
		return nil, err
	}
	if err := wr.collect(ctx); err != nil {
		return nil, err
	}
	lay, err := wr.chooseLayout()
	if err != nil {
		return nil, err
	}
	return wr.write(ctx, w, lay)
}

func newWriter(t tree.Tree, opt WriteOptions) (*writer, error) {
	wr := &writer{opt: opt, t: t}
	switch opt.Profile {
	case "", "modern":
		wr.flex = true
		wr.csum = opt.MetadataCsum
	case "legacy":
		if opt.MetadataCsum {
			return nil, failure.Kinded(failure.ErrInvalid, errors.New("ext4: metadata_csum is not available in the legacy profile"))
		}
	default:
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("ext4: unknown profile %q (use modern or legacy)", opt.Profile))
	}
	switch opt.BlockSize {
	case 0:
		wr.bs = 4096
	case 1024, 2048, 4096:
		wr.bs = int64(opt.BlockSize)
	default:
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("ext4: block size %d not supported (1024, 2048 or 4096)", opt.BlockSize))
	}
	switch opt.InodeSize {
	case 0:
		wr.isize = 256
	case 256, 512, 1024:
		if int64(opt.InodeSize) > wr.bs {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("ext4: inode size %d exceeds the block size", opt.InodeSize))
		}
		wr.isize = opt.InodeSize
	default:
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("ext4: inode size %d not supported (256, 512 or 1024)", opt.InodeSize))
	}
	if len(opt.VolumeName) > 16 || len(opt.MountPoint) > 63 {
		return nil, failure.Kinded(failure.ErrInvalid, errors.New("ext4: volume name longer than 16 bytes or mount point longer than 63"))
	}
	if !opt.Shrink && opt.Size <= 0 {
		return nil, failure.Kinded(failure.ErrInvalid, errors.New("ext4: give a size or ask to shrink"))
	}
	wr.ts = opt.Timestamp
	if wr.ts.IsZero() {
		wr.ts = time.Unix(0, 0)
		if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			if v, err := strconv.ParseInt(s, 10, 64); err == nil {
				wr.ts = time.Unix(v, 0)
			}
		}
	}
	return wr, nil
}

func (wr *writer) newInode(name string, m tree.Meta, ino uint32) *winode {
	n := &winode{ino: ino, name: name, meta: m, links: 1}
	for uint32(len(wr.inodes)) < ino {
		wr.inodes = append(wr.inodes, nil)
	}
	wr.inodes[ino-1] = n
	wr.order = append(wr.order, n)
	if ino > wr.lastIno {
		wr.lastIno = ino
	}
	return n
}

// collect walks the tree in lexical order and assigns inode numbers (root 2, lost+found 11, then 12…).
func (wr *writer) collect(ctx context.Context) error {
	rootMeta, err := wr.t.Meta(".")
	if err != nil {
		return fmt.Errorf("ext4: reading the source root: %w", err)
	}
	if !rootMeta.Mode.IsDir() {
		return failure.Kinded(failure.ErrInvalid, errors.New("ext4: the source root is not a directory"))
	}
	dirs := map[string]*winode{".": wr.newInode(".", rootMeta, rootIno)}
	dirs["."].parent = rootIno
	lpfMeta, err := wr.t.Meta("lost+found")
	switch {
	case err == nil && lpfMeta.Mode.IsDir():
	case err == nil:
		return failure.Kinded(failure.ErrInvalid, errors.New("ext4: the source's lost+found is not a directory"))
	default:
		lpfMeta = tree.Meta{Mode: fs.ModeDir | 0o700}
	}
	lpf := wr.newInode("lost+found", lpfMeta, firstIno)
	lpf.parent = rootIno
	dirs["lost+found"] = lpf
	dirs["."].children = append(dirs["."].children, wchild{"lost+found", firstIno, ftDir})
	dirs["."].subdirs++
	next := uint32(firstIno + 1)
	links := map[uint64]*winode{}
	err = tree.Walk(wr.t, func(name string, m tree.Meta) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if name == "." || name == "lost+found" {
			return nil
		}
		base := path.Base(name)
		if len(base) > 255 {
			return failure.Kinded(failure.ErrInvalid, fmt.Errorf("ext4: %s: name longer than 255 bytes", name))
		}
		parent, ok := dirs[path.Dir(name)]
		if !ok {
			return fmt.Errorf("ext4: %s: parent directory not walked", name)
		}
		var n *winode
		if m.Mode.IsRegular() && m.Link != 0 {
			if first, ok := links[m.Link]; ok {
				first.links++
				n = first
			}
		}
		if n == nil {
			if next == 0 {
				return failure.Kinded(failure.ErrInvalid, errors.New("ext4: too many files"))
			}
			n = wr.newInode(name, m, next)
			next++
			n.parent = parent.ino
			if m.Mode.IsRegular() {
				if m.Link != 0 {
					links[m.Link] = n
				}
				if m.Size < 0 {
					return failure.Kinded(failure.ErrInvalid, fmt.Errorf("ext4: %s: negative size", name))
				}
				wr.dataSize += m.Size
			}
			if m.Mode.IsDir() {
				dirs[name] = n
				parent.subdirs++
			}
		}
		parent.children = append(parent.children, wchild{base, n.ino, fileTypeOf(tree.UnixMode(m.Mode))})
		return nil
	})
	if err != nil {
		return fmt.Errorf("ext4: reading the source tree: %w", err)
	}
	for _, n := range wr.order {
		if err := wr.prepare(n); err != nil {
			return err
		}
	}
	return nil
}

// prepare computes an inode's contents that do not depend on where blocks go: directory blocks, data block
// count, xattr split.
func (wr *writer) prepare(n *winode) error {
	m := n.meta
	switch {
	case m.Mode.IsDir():
		n.dirData = wr.dirBlocks(n)
		n.nblocks = uint64(len(n.dirData))
	case m.Mode.IsRegular():
		n.nblocks = uint64((m.Size + wr.bs - 1) / wr.bs)
	case m.Mode&fs.ModeSymlink != 0:
		if len(m.Target) == 0 || int64(len(m.Target)) >= wr.bs {
			return failure.Kinded(failure.ErrInvalid, fmt.Errorf("ext4: %s: symlink target of %d bytes (want 1..%d)", n.name, len(m.Target), wr.bs-1))
		}
		if len(m.Target) >= 60 {
			n.nblocks = 1
		}
	}
	var xs []xattr
	for k, v := range m.Xattrs {
		idx, rest := xattrIndex(k)
		if idx == 0 {
			return failure.Kinded(failure.ErrInvalid, fmt.Errorf("ext4: %s: xattr %q has a namespace ext4 cannot store", n.name, k))
		}
		if idx == 2 || idx == 3 {
			d, err := aclToDisk(v)
			if err != nil {
				return failure.Kinded(failure.ErrInvalid, fmt.Errorf("ext4: %s: %s: %v", n.name, k, err))
			}
			v = d
		}
		if len(rest) > 255 {
			return failure.Kinded(failure.ErrInvalid, fmt.Errorf("ext4: %s: xattr name %q too long", n.name, k))
		}
		xs = append(xs, xattr{idx, rest, v})
	}
	sort.Slice(xs, func(i, j int) bool { return xattrLess(xs[i], xs[j]) })
	space := wr.isize - 128 - 32 - 4 - 4 // magic and terminator
	for _, x := range xs {
		if sz := xattrEntrySize(x) + xattrValueSize(x); sz <= space {
			n.inXattr = append(n.inXattr, x)
			space -= sz
		} else {
			n.blkXattr = append(n.blkXattr, x)
		}
	}
	if len(n.blkXattr) > 0 {
		need := 32 + 4
		var key bytes.Buffer
		for _, x := range n.blkXattr {
			need += xattrEntrySize(x) + xattrValueSize(x)
			fmt.Fprintf(&key, "%d:%d:%s:%d:", x.idx, len(x.name), x.name, len(x.value))
			key.Write(x.value)
		}
		if int64(need) > wr.bs {
			return failure.Kinded(failure.ErrInvalid, fmt.Errorf("ext4: %s: xattrs need %d bytes, more than one %d-byte block", n.name, need, wr.bs))
		}
		n.xkey = key.String()
	}
	return nil
}

func recLen(nameLen int) int { return (8 + nameLen + 3) &^ 3 }

// dirBlocks lays out a linear directory: ".", "..", then the entries in name order.
func (wr *writer) dirBlocks(n *winode) [][]byte {
	bs := int(wr.bs)
	usable := bs
	if wr.csum {
		usable -= 12
	}
	var blocks [][]byte
	var cur []byte
	pos, last := 0, -1
	flush := func() {
		if last >= 0 {
			le.PutUint16(cur[last+4:], uint16(usable-last))
		} else {
			le.PutUint16(cur[4:], uint16(usable))
		}
		if wr.csum {
			le.PutUint16(cur[usable+4:], 12)
			cur[usable+7] = 0xDE
		}
		blocks = append(blocks, cur)
		cur, pos, last = nil, 0, -1
	}
	add := func(name string, ino uint32, ft uint8) {
		rl := recLen(len(name))
		if cur != nil && pos+rl > usable {
			flush()
		}
		if cur == nil {
			cur = make([]byte, bs)
		}
		le.PutUint32(cur[pos:], ino)
		le.PutUint16(cur[pos+4:], uint16(rl))
		cur[pos+6] = byte(len(name))
		cur[pos+7] = ft
		copy(cur[pos+8:], name)
		last = pos
		pos += rl
	}
	add(".", n.ino, ftDir)
	add("..", n.parent, ftDir)
	for _, c := range n.children {
		add(c.name, c.ino, c.ft)
	}
	flush()
	if n.ino == firstIno && n.name == "lost+found" {
		// mke2fs gives lost+found 16 KiB (at least two blocks) so e2fsck can reconnect files without allocating.
		for int64(len(blocks))*wr.bs < 16384 || len(blocks) < 2 {
			cur = make([]byte, bs)
			flush()
		}
	}
	return blocks
}

// layout is a complete block plan for one filesystem size.
type layout struct {
	blocks     uint64 // blocks count
	groups     uint64
	bpg        uint64
	ipg        uint32
	inodes     uint32
	gdtBlocks  uint64
	descSize   int
	first      uint64 // first data block
	res        []rng  // reserved ranges (superblocks, GDTs, group metadata), sorted
	gd         []groupDesc
	cur        uint64 // allocation cursor
	jblocks    uint64
	journalIno *winode
	err        error
	sb         *superblock
}

type rng struct{ start, end uint64 }

func (wr *writer) superblockFor(l *layout) *superblock {
	sb := &superblock{
		InodesCount: l.inodes, BlocksCount: l.blocks, FirstDataBlock: uint32(l.first),
		LogBlockSize: uint32(bitsLen(uint64(wr.bs)) - 11), BlocksPerGroup: uint32(l.bpg),
		InodesPerGroup: l.ipg, Wtime: uint32(wr.ts.Unix()), MaxMntCount: 0xFFFF, State: 1, Errors: 1,
		LastCheck: uint32(wr.ts.Unix()), RevLevel: 1, FirstIno: firstIno, InodeSize: uint16(wr.isize),
		Compat: compatExtAttr | compatDirIndex, Incompat: incompatFiletype | incompatExtents,
		ROCompat: roSparseSuper | roLargeFile | roHugeFile | roDirNlink | roExtraIsize,
		UUID:     wr.opt.UUID, HashSeed: wr.opt.HashSeed, DefHashVersion: 1, DefaultMountOpts: 0x000C,
		MkfsTime: uint32(wr.ts.Unix()), MinExtraIsize: 32, WantExtraIsize: 32, Flags: 1,
	}
	sb.LogClusterSize = sb.LogBlockSize
	sb.ClustersPerGroup = sb.BlocksPerGroup
	copy(sb.VolumeName[:], wr.opt.VolumeName)
	copy(sb.LastMounted[:], wr.opt.MountPoint)
	if wr.flex {
		sb.Incompat |= incompatFlexBG
		sb.LogGroupsPerFlex = 4
	}
	if l.blocks > 0xFFFFFFFF {
		sb.Incompat |= incompat64bit
		sb.DescSize = 64
	}
	if wr.csum {
		sb.ROCompat |= roMetadataCsum
		sb.ChecksumType = 1
	}
	if wr.opt.ReadOnly {
		sb.ROCompat |= 0x1000
	}
	if wr.opt.Journal {
		sb.Compat |= compatHasJournal
		sb.JournalInum = journalIno
		sb.JnlBackupType = 1
	}
	return sb
}

func bitsLen(v uint64) int {
	n := 0
	for v > 1 {
		v >>= 1
		n++
	}
	return n + 1
}

// journalBlocks is mke2fs's default journal size for a filesystem of n blocks.
func journalBlocks(n uint64) uint64 {
	switch {
	case n < 32768:
		return 1024
	case n < 256*1024:
		return 4096
	case n < 512*1024:
		return 8192
	case n < 4096*1024:
		return 16384
	case n < 8192*1024:
		return 32768
	case n < 16384*1024:
		return 65536
	case n < 32768*1024:
		return 131072
	}
	return 262144
}

// chooseLayout picks the filesystem size (fixed, or the smallest that fits plus the margin) and plans it.
func (wr *writer) chooseLayout() (*layout, error) {
	needInodes := uint64(wr.lastIno)
	if wr.opt.Inodes > 0 && uint64(wr.opt.Inodes) > needInodes {
		needInodes = uint64(wr.opt.Inodes)
	}
	if !wr.opt.Shrink {
		blocks := uint64(wr.opt.Size / wr.bs)
		if blocks < 64 {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("ext4: size %d bytes is too small", wr.opt.Size))
		}
		roomy := max(needInodes+needInodes/8+64, blocks*uint64(wr.bs)/16384)
		if l := wr.plan(blocks, roomy); l.err == nil {
			return l, nil
		}
		l := wr.plan(blocks, needInodes)
		if l.err != nil {
			need := "more"
			wr.opt.Shrink = true
			if min, err := wr.chooseLayout(); err == nil {
				need = fmt.Sprint(min.blocks * uint64(wr.bs))
			}
			wr.opt.Shrink = false
			return nil, fmt.Errorf("%w: %d entries with %d bytes of file data need %s bytes, the size is %d bytes (use a bigger size or shrink)",
				ErrNoSpace, len(wr.order), wr.dataSize, need, wr.opt.Size)
		}
		return l, nil
	}
	margin := uint64((wr.opt.Margin + wr.bs - 1) / wr.bs)
	est := uint64(0)
	for _, n := range wr.order {
		est += n.nblocks + n.nblocks/300 + 1
	}
	est += needInodes*uint64(wr.isize)/uint64(wr.bs) + 64 + margin
	if wr.opt.Journal {
		est += journalBlocks(est)
	}
	est = max(est, 256)
	var best *layout
	tried := map[uint64]bool{}
	n := est
	for i := 0; i < 40; i++ {
		tried[n] = true
		l := wr.plan(n, needInodes)
		if l.err != nil {
			n += n/8 + 64
			continue
		}
		if best == nil || l.blocks < best.blocks {
			best = l
		}
		want := max(l.cur+margin, 64)
		if want >= n || tried[want] {
			break
		}
		n = want
	}
	if best == nil {
		return nil, fmt.Errorf("%w: could not find a size that holds %d inodes and %d bytes of data", ErrNoSpace, wr.lastIno, wr.dataSize)
	}
	// Plans store their block lists in the inodes: redo the chosen one.
	return wr.plan(best.blocks, needInodes), nil
}

// plan lays out the whole filesystem for a given block count; l.err says when the tree does not fit.
func (wr *writer) plan(blocks uint64, wantInodes uint64) *layout {
	bs := uint64(wr.bs)
	l := &layout{bpg: 8 * bs, descSize: 32}
	if wr.bs == 1024 {
		l.first = 1
	}
	l.blocks = blocks
	for {
		l.groups = (l.blocks - l.first + l.bpg - 1) / l.bpg
		// A last group too small for its own metadata is dropped, as mke2fs does.
		last := l.blocks - l.first - (l.groups-1)*l.bpg
		if l.groups > 1 && last < 64 {
			l.blocks -= last
			continue
		}
		break
	}
	if l.blocks > 0xFFFFFFFF {
		l.descSize = 64
	}
	perTable := bs / uint64(wr.isize)
	ipg := (wantInodes + l.groups - 1) / l.groups
	ipg = max(ipg, 16)
	ipg = (ipg + perTable - 1) / perTable * perTable
	ipg = (ipg + 7) &^ 7
	if ipg > 8*bs {
		l.err = fmt.Errorf("%w: %d inodes need more than %d groups", ErrNoSpace, wantInodes, l.groups)
		return l
	}
	if ipg*l.groups > 0xFFFFFFFF {
		l.err = fmt.Errorf("%w: more than 2^32 inodes", ErrNoSpace)
		return l
	}
	l.ipg = uint32(ipg)
	l.inodes = l.ipg * uint32(l.groups)
	if uint64(l.inodes) < uint64(wr.lastIno) {
		l.err = fmt.Errorf("%w: %d inodes needed", ErrNoSpace, wr.lastIno)
		return l
	}
	l.sb = wr.superblockFor(l)
	l.gdtBlocks = (l.groups*uint64(l.descSize) + bs - 1) / bs
	itBlocks := ipg * uint64(wr.isize) / bs
	l.gd = make([]groupDesc, l.groups)
	for g := uint64(0); g < l.groups; g++ {
		start := l.first + g*l.bpg
		if l.sb.hasSuper(g) {
			l.res = append(l.res, rng{start, start + 1 + l.gdtBlocks})
			start += 1 + l.gdtBlocks
		}
		if !wr.flex {
			// Legacy: each group keeps its bitmaps and inode table inside itself.
			end := min(l.first+(g+1)*l.bpg, l.blocks)
			if start+2+itBlocks > end {
				l.err = fmt.Errorf("%w: group %d has no room for its inode table", ErrNoSpace, g)
				return l
			}
			l.gd[g].BlockBitmap, l.gd[g].InodeBitmap, l.gd[g].InodeTable = start, start+1, start+2
			l.res = append(l.res, rng{start, start + 2 + itBlocks})
		}
	}
	sort.Slice(l.res, func(i, j int) bool { return l.res[i].start < l.res[j].start })
	l.cur = l.first
	if wr.flex {
		// flex_bg: all bitmaps, then all inode tables, packed from the start.
		for g := range l.gd {
			l.gd[g].BlockBitmap = l.allocContig(1)
		}
		for g := range l.gd {
			l.gd[g].InodeBitmap = l.allocContig(1)
		}
		for g := range l.gd {
			l.gd[g].InodeTable = l.allocContig(itBlocks)
		}
	}
	if l.err != nil {
		return l
	}
	if wr.opt.Journal {
		l.jblocks = journalBlocks(l.blocks)
		if l.jblocks*4 > l.blocks {
			l.err = fmt.Errorf("%w: %d blocks are too few for a %d-block journal", ErrNoSpace, l.blocks, l.jblocks)
			return l
		}
		jin := &winode{ino: journalIno, meta: tree.Meta{Mode: 0o600, Size: int64(l.jblocks) * wr.bs}, nblocks: l.jblocks, links: 1}
		jin.ext = l.allocRuns(l.jblocks)
		wr.buildExtentTree(l, jin)
		l.journalIno = jin
	}
	for _, n := range wr.order {
		n.ext, n.tree, n.xblock = nil, nil, 0
		if n.nblocks > 0 {
			n.ext = l.allocRuns(n.nblocks)
		}
	}
	for _, n := range wr.order {
		wr.buildExtentTree(l, n)
	}
	// Shared xattr blocks (at most 1024 references each, the kernel's limit).
	wr.xblocks = wr.xblocks[:0]
	byKey := map[string]*xblock{}
	for _, n := range wr.order {
		if n.xkey == "" {
			continue
		}
		xb := byKey[n.xkey]
		if xb == nil || xb.refs >= 1024 {
			xb = &xblock{key: n.xkey, attrs: n.blkXattr, blk: l.allocContig(1)}
			byKey[n.xkey] = xb
			wr.xblocks = append(wr.xblocks, xb)
		}
		xb.refs++
		n.xblock = xb.blk
	}
	if l.err == nil && l.cur > l.blocks {
		l.err = fmt.Errorf("%w: needs more than %d blocks", ErrNoSpace, l.blocks)
	}
	return l
}

// skip moves the cursor past reserved ranges and returns the end of the free run it is in.
func (l *layout) skip() uint64 {
	for _, r := range l.res {
		if l.cur < r.start {
			return r.start
		}
		if l.cur < r.end {
			l.cur = r.end
		}
	}
	return ^uint64(0)
}

func (l *layout) fail(n uint64) {
	if l.err == nil {
		l.err = fmt.Errorf("%w: the filesystem of %d blocks is full (needed %d more)", ErrNoSpace, l.blocks, n)
	}
}

// allocContig returns n contiguous free blocks.
func (l *layout) allocContig(n uint64) uint64 {
	for {
		end := l.skip()
		if end-l.cur >= n {
			b := l.cur
			l.cur += n
			if l.cur > l.blocks {
				l.fail(n)
			}
			return b
		}
		l.cur = end
	}
}

// allocRuns allocates n blocks as few extents as the layout allows (at most 32768 blocks each).
func (l *layout) allocRuns(n uint64) []extent {
	var out []extent
	var lblk uint64
	for n > 0 {
		end := l.skip()
		k := min(n, end-l.cur, 32768)
		if k == 0 {
			continue
		}
		if p := len(out) - 1; p >= 0 && out[p].pblk+out[p].n == l.cur && out[p].n+k <= 32768 {
			out[p].n += k
		} else {
			out = append(out, extent{lblk: lblk, pblk: l.cur, n: k})
		}
		l.cur += k
		lblk += k
		n -= k
	}
	if l.cur > l.blocks {
		l.fail(0)
	}
	return out
}

// buildExtentTree fills n.root (the 60-byte i_block) and allocates index/leaf blocks for big extent lists.
func (wr *writer) buildExtentTree(l *layout, n *winode) {
	m := n.meta
	root := make([]byte, 60)
	n.root = root
	switch {
	case m.Mode&fs.ModeSymlink != 0 && n.nblocks == 0:
		copy(root, m.Target)
		return
	case m.Mode&fs.ModeDevice != 0:
		major, minor := tree.SplitDev(m.Rdev)
		if major < 256 && minor < 256 {
			le.PutUint32(root[0:], major<<8|minor)
		} else {
			le.PutUint32(root[4:], (minor&0xff)|(major&0xfff)<<8|(minor&^0xff)<<12)
		}
		return
	case !m.Mode.IsRegular() && !m.Mode.IsDir() && m.Mode&fs.ModeSymlink == 0:
		return // fifo, socket
	}
	// Leaves: extents; then index levels until the top fits the inode's 4 slots.
	type entry struct {
		lblk uint64
		data []byte // 12-byte entry
	}
	var level []entry
	for _, e := range n.ext {
		b := make([]byte, 12)
		le.PutUint32(b[0:], uint32(e.lblk))
		le.PutUint16(b[4:], uint16(e.n))
		le.PutUint16(b[6:], uint16(e.pblk>>32))
		le.PutUint32(b[8:], uint32(e.pblk))
		level = append(level, entry{e.lblk, b})
	}
	perBlock := int((wr.bs - 12) / 12)
	depth := 0
	for len(level) > 4 {
		var up []entry
		for i := 0; i < len(level); i += perBlock {
			chunk := level[i:min(i+perBlock, len(level))]
			blk := l.allocContig(1)
			data := make([]byte, wr.bs)
			le.PutUint16(data[0:], extentMagic)
			le.PutUint16(data[2:], uint16(len(chunk)))
			le.PutUint16(data[4:], uint16(perBlock))
			le.PutUint16(data[6:], uint16(depth))
			for j, c := range chunk {
				copy(data[12+12*j:], c.data)
			}
			n.tree = append(n.tree, extNode{blk, data})
			b := make([]byte, 12)
			le.PutUint32(b[0:], uint32(chunk[0].lblk))
			le.PutUint32(b[4:], uint32(blk))
			le.PutUint16(b[8:], uint16(blk>>32))
			up = append(up, entry{chunk[0].lblk, b})
		}
		level = up
		depth++
	}
	le.PutUint16(root[0:], extentMagic)
	le.PutUint16(root[2:], uint16(len(level)))
	le.PutUint16(root[4:], 4)
	le.PutUint16(root[6:], uint16(depth))
	for j, c := range level {
		copy(root[12+12*j:], c.data)
	}
}

func (n *winode) usesExtents() bool {
	m := n.meta
	return m.Mode.IsRegular() || m.Mode.IsDir() || (m.Mode&fs.ModeSymlink != 0 && n.nblocks > 0)
}

// write puts the planned filesystem into w.
func (wr *writer) write(ctx context.Context, w io.WriterAt, l *layout) (*WriteResult, error) {
	bs := wr.bs
	size := int64(l.blocks) * bs
	imgSize := size
	if !wr.opt.Shrink && wr.opt.Size > size {
		imgSize = wr.opt.Size
	}
	if t, ok := w.(interface{ Truncate(int64) error }); ok {
		if err := t.Truncate(imgSize); err != nil {
			return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("ext4: sizing the output: %w", err))
		}
	}
	// Block bitmap of the whole filesystem.
	used := make([]byte, (l.blocks+7)/8)
	mark := func(b, n uint64) {
		for i := b; i < b+n; i++ {
			used[i/8] |= 1 << (i % 8)
		}
	}
	for _, r := range l.res {
		mark(r.start, r.end-r.start)
	}
	itBlocks := uint64(l.ipg) * uint64(wr.isize) / uint64(bs)
	if wr.flex {
		for _, g := range l.gd {
			mark(g.BlockBitmap, 1)
			mark(g.InodeBitmap, 1)
			mark(g.InodeTable, itBlocks)
		}
	}
	all := wr.order
	if l.journalIno != nil {
		all = append([]*winode{l.journalIno}, wr.order...)
	}
	for _, n := range all {
		for _, e := range n.ext {
			mark(e.pblk, e.n)
		}
		for _, t := range n.tree {
			mark(t.blk, 1)
		}
	}
	for _, xb := range wr.xblocks {
		mark(xb.blk, 1)
	}
	bw := &errWriter{w: w}
	var freeBlocks uint64
	var freeInodes uint32
	seed := l.sb.csumSeed()
	// Per-group bitmaps and counts.
	ibm := make([]byte, bs)
	bbm := make([]byte, bs)
	for g := uint64(0); g < l.groups; g++ {
		if err := ctx.Err(); err != nil { // a large image has thousands of groups: Ctrl-C stops here too
			return nil, err
		}
		gd := &l.gd[g]
		start := l.first + g*l.bpg
		n := min(l.bpg, l.blocks-start)
		clear(bbm)
		var free uint32
		for i := uint64(0); i < n; i++ {
			b := start + i
			if used[(b)/8]&(1<<(b%8)) != 0 {
				bbm[i/8] |= 1 << (i % 8)
			} else {
				free++
			}
		}
		for i := n; i < uint64(bs)*8; i++ {
			bbm[i/8] |= 1 << (i % 8)
		}
		clear(ibm)
		var ifree, dirs uint32
		for i := uint32(0); i < l.ipg; i++ {
			ino := uint32(g)*l.ipg + i + 1
			inUse := ino < firstIno || (int(ino-1) < len(wr.inodes) && wr.inodes[ino-1] != nil)
			if inUse {
				ibm[i/8] |= 1 << (i % 8)
				if int(ino-1) < len(wr.inodes) && wr.inodes[ino-1] != nil && wr.inodes[ino-1].meta.Mode.IsDir() {
					dirs++
				}
			} else {
				ifree++
			}
		}
		for i := uint64(l.ipg); i < uint64(bs)*8; i++ {
			ibm[i/8] |= 1 << (i % 8)
		}
		gd.FreeBlocks, gd.FreeInodes, gd.UsedDirs = free, ifree, dirs
		freeBlocks += uint64(free)
		freeInodes += ifree
		if wr.csum {
			gd.BlockBitmapCsum = crc32c(seed, bbm[:l.bpg/8])
			gd.InodeBitmapCsum = crc32c(seed, ibm[:l.ipg/8])
			if l.descSize < 64 {
				gd.BlockBitmapCsum &= 0xFFFF
				gd.InodeBitmapCsum &= 0xFFFF
			}
		}
		bw.at(bbm, int64(gd.BlockBitmap)*bs)
		bw.at(ibm, int64(gd.InodeBitmap)*bs)
	}
	sb := l.sb
	sb.FreeBlocks, sb.FreeInodes = freeBlocks, freeInodes
	// Journal.
	jin := l.journalIno
	if jin != nil {
		for i := 0; i < 15; i++ {
			sb.JnlBlocks[i] = le.Uint32(jin.root[4*i:])
		}
		sb.JnlBlocks[15] = uint32(uint64(jin.meta.Size) >> 32)
		sb.JnlBlocks[16] = uint32(jin.meta.Size)
		js := make([]byte, bs)
		be32 := func(off int, v uint32) {
			js[off], js[off+1], js[off+2], js[off+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		}
		be32(0, 0xC03B3998)
		be32(4, 4) // superblock v2
		be32(12, uint32(bs))
		be32(16, uint32(l.jblocks))
		be32(20, 1) // first log block
		be32(24, 1) // sequence
		copy(js[48:], sb.UUID[:])
		be32(64, 1) // users
		bw.at(js, int64(jin.ext[0].pblk)*bs)
	}
	// Superblock and group descriptors in every group that keeps a copy.
	gdt := make([]byte, l.gdtBlocks*uint64(bs))
	for g := range l.gd {
		d := gdt[g*l.descSize : (g+1)*l.descSize]
		l.gd[g].encode(d, l.descSize >= 64)
		if wr.csum {
			le.PutUint16(d[30:], groupDescCsum(seed, uint32(g), d))
		}
	}
	sbuf := make([]byte, sbSize)
	for g := uint64(0); g < l.groups; g++ {
		if err := ctx.Err(); err != nil { // a large image has thousands of groups: Ctrl-C stops here too
			return nil, err
		}
		if !sb.hasSuper(g) {
			continue
		}
		sb.BlockGroupNr = uint16(g)
		sb.encode(sbuf)
		start := int64(l.first+g*l.bpg) * bs
		blk := make([]byte, bs)
		if g == 0 && l.first == 0 {
			copy(blk[sbOffset:], sbuf) // block 0 also holds the (empty) boot sector
		} else {
			copy(blk, sbuf)
		}
		bw.at(blk, start)
		bw.at(gdt, start+bs)
	}
	if bw.err != nil {
		return nil, bw.err
	}
	// Inode tables, one group at a time.
	table := make([]byte, itBlocks*uint64(bs))
	for g := uint64(0); g < l.groups; g++ {
		if err := ctx.Err(); err != nil { // a large image has thousands of groups: Ctrl-C stops here too
			return nil, err
		}
		clear(table)
		for i := uint32(0); i < l.ipg; i++ {
			ino := uint32(g)*l.ipg + i + 1
			raw := table[int(i)*wr.isize : int(i+1)*wr.isize]
			switch {
			case ino == journalIno && jin != nil:
				wr.encodeInode(raw, jin, seed)
			case int(ino-1) < len(wr.inodes) && wr.inodes[ino-1] != nil:
				wr.encodeInode(raw, wr.inodes[ino-1], seed)
			}
		}
		bw.at(table, int64(l.gd[g].InodeTable)*bs)
	}
	// Directory, extent tree, slow symlink and xattr blocks.
	for _, n := range all {
		for _, t := range n.tree {
			if wr.csum {
				max := int(le.Uint16(t.data[4:]))
				le.PutUint32(t.data[12+12*max:], crc32c(inodeSeed(seed, n.ino), t.data[:12+12*max]))
			}
			bw.at(t.data, int64(t.blk)*bs)
		}
		if n.meta.Mode.IsDir() {
			i := 0
			for _, e := range n.ext {
				for k := uint64(0); k < e.n; k++ {
					blk := n.dirData[i]
					if wr.csum {
						le.PutUint32(blk[bs-4:], crc32c(inodeSeed(seed, n.ino), blk[:bs-12]))
					}
					bw.at(blk, int64(e.pblk+k)*bs)
					i++
				}
			}
		}
		if n.meta.Mode&fs.ModeSymlink != 0 && n.nblocks > 0 {
			blk := make([]byte, bs)
			copy(blk, n.meta.Target)
			bw.at(blk, int64(n.ext[0].pblk)*bs)
		}
	}
	for _, xb := range wr.xblocks {
		bw.at(wr.xattrBlock(xb, seed), int64(xb.blk)*bs)
	}
	if bw.err != nil {
		return nil, bw.err
	}
	if err := wr.writeData(ctx, w, l); err != nil {
		return nil, err
	}
	if _, ok := w.(interface{ Truncate(int64) error }); !ok {
		last := uint64(imgSize/bs) - 1
		if last >= l.blocks || used[last/8]&(1<<(last%8)) == 0 {
			if _, err := w.WriteAt([]byte{0}, imgSize-1); err != nil {
				return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("ext4: writing: %w", err))
			}
		}
	}
	files := 0
	for _, n := range wr.order {
		if n.meta.Mode.IsRegular() {
			files++
		}
	}
	return &WriteResult{Size: imgSize, BlockSize: bs, BlocksCount: l.blocks, FreeBlocks: freeBlocks,
		InodesCount: l.inodes, FreeInodes: freeInodes, Files: files, DataBytes: wr.dataSize}, nil
}

func inodeSeed(seed, ino uint32) uint32 {
	var b [8]byte
	le.PutUint32(b[:], ino)
	return crc32c(seed, b[:]) // generation 0 follows
}

type errWriter struct {
	w   io.WriterAt
	err error
}

func (e *errWriter) at(p []byte, off int64) {
	if e.err != nil {
		return
	}
	if _, err := e.w.WriteAt(p, off); err != nil {
		e.err = failure.Kinded(failure.ErrIO, fmt.Errorf("ext4: writing at %d: %w", off, err))
	}
}

func putTime(raw []byte, off, extraOff int, t time.Time) {
	s := t.Unix()
	le.PutUint32(raw[off:], uint32(s))
	if extraOff > 0 {
		epoch := uint32((s-int64(int32(uint32(s))))>>32) & 3
		le.PutUint32(raw[extraOff:], epoch|uint32(t.Nanosecond())<<2)
	}
}

func (wr *writer) encodeInode(raw []byte, n *winode, seed uint32) {
	m := n.meta
	mode := tree.UnixMode(m.Mode)
	le.PutUint16(raw[0:], uint16(mode))
	le.PutUint16(raw[2:], uint16(m.UID))
	le.PutUint16(raw[120:], uint16(m.UID>>16))
	le.PutUint16(raw[24:], uint16(m.GID))
	le.PutUint16(raw[122:], uint16(m.GID>>16))
	var size int64
	switch {
	case m.Mode.IsRegular():
		size = m.Size
	case m.Mode.IsDir():
		size = int64(n.nblocks) * wr.bs
	case m.Mode&fs.ModeSymlink != 0:
		size = int64(len(m.Target))
	}
	le.PutUint32(raw[4:], uint32(size))
	le.PutUint32(raw[108:], uint32(size>>32))
	for _, o := range [][2]int{{8, 140}, {12, 132}, {16, 136}, {144, 148}} {
		putTime(raw, o[0], o[1], wr.ts)
	}
	links := n.links
	if m.Mode.IsDir() {
		links = 2 + n.subdirs
		if links >= 65000 {
			links = 1
		}
	}
	le.PutUint16(raw[26:], uint16(links))
	sectors := (n.nblocks + uint64(len(n.tree))) * uint64(wr.bs/512)
	if n.xblock != 0 {
		sectors += uint64(wr.bs / 512)
	}
	le.PutUint32(raw[28:], uint32(sectors))
	le.PutUint16(raw[116:], uint16(sectors>>32))
	var flags uint32
	if n.usesExtents() {
		flags |= flagExtents
	}
	le.PutUint32(raw[32:], flags)
	copy(raw[40:100], n.root)
	le.PutUint32(raw[104:], uint32(n.xblock))
	le.PutUint16(raw[118:], uint16(n.xblock>>32))
	le.PutUint16(raw[128:], 32)
	if len(n.inXattr) > 0 {
		region := raw[160:]
		le.PutUint32(region, xattrMagic)
		body := region[4:]
		wr.encodeXattrs(body, body, 0, n.inXattr)
	}
	if wr.csum {
		c := inodeCsum(seed, n.ino, raw)
		le.PutUint16(raw[124:], uint16(c))
		le.PutUint16(raw[130:], uint16(c>>16))
	}
}

// encodeXattrs writes entries from entries[entOff:] and values from the end of base; value offsets are
// relative to base. It returns the entry hashes.
func (wr *writer) encodeXattrs(entries, base []byte, entOff int, xs []xattr) []uint32 {
	pos := entOff
	vend := len(base)
	var hashes []uint32
	for _, x := range xs {
		e := entries[pos:]
		e[0] = byte(len(x.name))
		e[1] = x.idx
		voff := 0
		if len(x.value) > 0 {
			vend -= xattrValueSize(x)
			voff = vend
			copy(base[vend:], x.value)
		}
		le.PutUint16(e[2:], uint16(voff))
		le.PutUint32(e[8:], uint32(len(x.value)))
		copy(e[16:], x.name)
		h := xattrEntryHash([]byte(x.name), x.value)
		le.PutUint32(e[12:], h)
		hashes = append(hashes, h)
		pos += xattrEntrySize(x)
	}
	return hashes
}

func (wr *writer) xattrBlock(xb *xblock, seed uint32) []byte {
	b := make([]byte, wr.bs)
	le.PutUint32(b[0:], xattrMagic)
	le.PutUint32(b[4:], uint32(xb.refs))
	le.PutUint32(b[8:], 1)
	hashes := wr.encodeXattrs(b, b, 32, xb.attrs)
	var h uint32
	for _, eh := range hashes {
		h = (h << 16) ^ (h >> 16) ^ eh
	}
	le.PutUint32(b[12:], h)
	if wr.csum {
		var nb [8]byte
		le.PutUint64(nb[:], xb.blk)
		le.PutUint32(b[16:], crc32c(crc32c(seed, nb[:]), b))
	}
	return b
}

// writeData copies every regular file's contents to its extents, several files at a time.
func (wr *writer) writeData(ctx context.Context, w io.WriterAt, l *layout) error {
	task := progress.OrDiscard(wr.opt.Progress).Task("ext4 data", wr.dataSize)
	workers := wr.opt.Workers
	if workers <= 0 {
		workers = min(max(runtime.NumCPU(), 2), 8)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan *winode)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	fail := func(err error) {
		once.Do(func() { firstErr = err; cancel() })
	}
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for n := range jobs {
				if err := wr.copyFile(ctx, w, n, buf, task); err != nil {
					fail(err)
				}
			}
		}()
	}
	for _, n := range wr.order {
		if !n.meta.Mode.IsRegular() || n.meta.Size == 0 {
			continue
		}
		select {
		case jobs <- n:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	task.Done(firstErr)
	return firstErr
}

func (wr *writer) copyFile(ctx context.Context, w io.WriterAt, n *winode, buf []byte, task progress.Task) error {
	f, err := wr.t.Open(n.name)
	if err != nil {
		return fmt.Errorf("ext4: reading %s: %w", n.name, err)
	}
	defer f.Close()
	bs := wr.bs
	remaining := n.meta.Size
	for _, e := range n.ext {
		off := int64(e.pblk) * bs
		end := off + int64(e.n)*bs
		for off < end {
			if err := ctx.Err(); err != nil {
				return err
			}
			k := min(int64(len(buf)), end-off)
			want := min(k, remaining)
			got, err := io.ReadFull(f, buf[:want])
			if err != nil {
				return fmt.Errorf("ext4: %s: read %d of %d bytes (did the file change while building?): %w", n.name, n.meta.Size-remaining+int64(got), n.meta.Size, err)
			}
			clear(buf[want:k])
			if _, err := w.WriteAt(buf[:k], off); err != nil {
				return failure.Kinded(failure.ErrIO, fmt.Errorf("ext4: writing %s: %w", n.name, err))
			}
			task.Add(want)
			remaining -= want
			off += k
		}
	}
	var one [1]byte
	if m, _ := f.Read(one[:]); m > 0 {
		return fmt.Errorf("ext4: %s is longer than the %d bytes its metadata says (did it change while building?)", n.name, n.meta.Size)
	}
	return nil
}
