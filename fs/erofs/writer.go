package erofs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/progress"
)

// WriteOptions controls Write.
type WriteOptions struct {
	// Compression is "" (none), "lz4" or "lz4hc".
	Compression string
	// Level is the lz4hc level (1-12, default 9 like mkfs.erofs).
	Level int
	// ClusterSize is the largest physical cluster in bytes (default 4096; larger values use big pclusters).
	ClusterSize int
	// UUID is the filesystem UUID (zero by default, for reproducible images).
	UUID [16]byte
	// Timestamp is the build time and every inode's time. Zero means $SOURCE_DATE_EPOCH, else the Unix epoch;
	// the wall clock is never used.
	Timestamp  time.Time
	VolumeName string
	// Workers compress in parallel (default GOMAXPROCS); the output does not depend on it.
	Workers  int
	Progress progress.Reporter
	// ReuseStored copies how files that come from an EROFS image are stored there (their LZ4 clusters,
	// or the decision to store them uncompressed; see File.StoredLayout) instead of compressing them
	// again: a patched image is rebuilt at copy speed. The output then depends on the source image's
	// layout as well as on the tree (still the same bytes for the same source, tree and options).
	ReuseStored bool
}

// WriteResult describes a written image.
type WriteResult struct {
	Size              int64 `json:"size"`
	Blocks            int64 `json:"blocks"`
	Inodes            int64 `json:"inodes"`
	UncompressedBytes int64 `json:"uncompressed_bytes"` // regular file contents
	CompressedBytes   int64 `json:"compressed_bytes"`   // blocks holding those contents
	CompressedFiles   int64 `json:"compressed_files"`
	// ReusedBytes are file bytes whose stored form was copied from the source image (ReuseStored).
	ReusedBytes int64 `json:"reused_bytes,omitempty"`
}

const (
	wBlkBits = 12
	wBlkSize = 1 << wBlkBits
	// segSize is the unit of parallel compression; extents never cross it (aligned to lclusters).
	segSize = 4 << 20
	// maxExtentIn bounds the input of one compressed extent.
	maxExtentIn = 1 << 20
	// keepRawLimit: raw data of a file is kept for an uncompressed fallback up to this size, else re-read.
	keepRawLimit = 64 << 20
)

func usageErr(format string, args ...any) error {
	return failure.Kinded(failure.ErrUsage, fmt.Errorf("erofs: "+format, args...))
}

// wnode is one name in the tree.
type wnode struct {
	name     string
	base     string
	meta     tree.Meta
	children []*wnode
	ino      *winode
}

// winode is one inode to write (hard links share it).
type winode struct {
	first    *wnode
	mode     uint32
	nlink    uint32
	ino      uint32
	shared   []uint32 // shared xattr ids
	inline   []byte   // encoded inline xattr entries
	xsize    int64
	extended bool
	layout   int
	size     int64
	blkaddr  uint32
	tail     []byte // inline tail data
	zindex   []byte // full compression indexes
	zadvise  uint16
	cblocks  uint32
	rec      int64 // meta record size
	nid      uint64
	// storeFlat: the source image stored this file uncompressed; do not try again (ReuseStored).
	storeFlat bool
}

func (in *winode) isize() int64 {
	if in.extended {
		return 64
	}
	return 32
}

// Write builds an EROFS image of t into w. Same tree and options give the same bytes.
func Write(ctx context.Context, w io.WriterAt, t tree.Tree, opt WriteOptions) (*WriteResult, error) {
	wr, err := newWriter(w, t, opt)
	if err != nil {
		return nil, err
	}
	return wr.run(ctx)
}

type writer struct {
	w        io.WriterAt
	t        tree.Tree
	opt      WriteOptions
	level    int
	compress bool
	budget   int // pcluster bytes
	big      bool
	ts       time.Time

	root     *wnode
	inodes   []*winode // walk order, unique
	sharedX  map[string]uint32
	xattrBlk int64 // first block of shared xattrs
	xattrBuf []byte
	dataBlk  int64 // next free data block
	res      WriteResult
	task     progress.Task
	reused   atomic.Int64 // file bytes whose stored form came from the source (produce's goroutine)
}

func newWriter(w io.WriterAt, t tree.Tree, opt WriteOptions) (*writer, error) {
	wr := &writer{w: w, t: t, opt: opt, budget: wBlkSize}
	switch opt.Compression {
	case "", "none":
	case "lz4":
		wr.compress, wr.level = true, 0
	case "lz4hc":
		wr.compress, wr.level = true, 9
		if opt.Level != 0 {
			if opt.Level < 1 || opt.Level > 12 {
				return nil, usageErr("lz4hc level %d is not in 1..12", opt.Level)
			}
			wr.level = opt.Level
		}
	default:
		return nil, usageErr("unsupported compression %q (use lz4 or lz4hc)", opt.Compression)
	}
	if opt.ClusterSize != 0 {
		cs := opt.ClusterSize
		if cs%wBlkSize != 0 || cs < wBlkSize || cs > 1<<20 {
			return nil, usageErr("cluster size %d must be a multiple of %d up to 1 MiB", cs, wBlkSize)
		}
		wr.budget = cs
		wr.big = cs > wBlkSize && wr.compress
	}
	if len(opt.VolumeName) > 16 {
		return nil, usageErr("volume name %q is longer than 16 bytes", opt.VolumeName)
	}
	wr.ts = opt.Timestamp
	if wr.ts.IsZero() {
		wr.ts = time.Unix(0, 0)
		if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, usageErr("SOURCE_DATE_EPOCH=%q is not a number", s)
			}
			wr.ts = time.Unix(n, 0)
		}
	}
	if wr.opt.Workers <= 0 {
		wr.opt.Workers = runtime.GOMAXPROCS(0)
	}
	return wr, nil
}

func (wr *writer) run(ctx context.Context) (*WriteResult, error) {
	if err := wr.scan(); err != nil {
		return nil, err
	}
	if err := wr.buildSharedXattrs(); err != nil {
		return nil, err
	}
	var total int64
	for _, in := range wr.inodes {
		if in.first.meta.Mode.IsRegular() {
			total += in.size
		}
	}
	wr.task = progress.OrDiscard(wr.opt.Progress).Task("erofs: write", total)
	err := wr.writeFiles(ctx)
	if err == nil {
		err = wr.finish()
	}
	wr.task.Done(err)
	if err != nil {
		return nil, err
	}
	wr.res.ReusedBytes = wr.reused.Load()
	return &wr.res, nil
}

// scan walks the tree and builds nodes and inodes.
func (wr *writer) scan() error {
	nodes := map[string]*wnode{}
	links := map[uint64]*winode{}
	var ino uint32
	err := tree.Walk(wr.t, func(name string, m tree.Meta) error {
		n := &wnode{name: name, base: path.Base(name), meta: m}
		if name == "." {
			if !m.Mode.IsDir() {
				return fmt.Errorf("erofs: tree root is not a directory")
			}
			wr.root = n
		} else {
			if len(n.base) > 255 {
				return failure.Kinded(failure.ErrInvalid, fmt.Errorf("erofs: %s: name longer than 255 bytes", name))
			}
			p := nodes[path.Dir(name)]
			if p == nil {
				return fmt.Errorf("erofs: %s: parent not walked", name)
			}
			p.children = append(p.children, n)
		}
		if m.Mode.IsDir() {
			nodes[name] = n
		}
		if m.Mode.IsRegular() && m.Link != 0 {
			if in, ok := links[m.Link]; ok {
				in.nlink++
				n.ino = in
				return nil
			}
		}
		ino++
		in := &winode{first: n, mode: tree.UnixMode(m.Mode), nlink: 1, ino: ino}
		if m.Mode.IsRegular() {
			in.size = m.Size
			if m.Link != 0 {
				links[m.Link] = in
			}
		}
		n.ino = in
		wr.inodes = append(wr.inodes, in)
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range nodes {
		n.ino.nlink = 2
		for _, c := range n.children {
			if c.meta.Mode.IsDir() {
				n.ino.nlink++
			}
		}
	}
	return nil
}

type xent struct {
	idx   uint8
	name  string // suffix
	value []byte
	key   string
}

func (x xent) size() int64 { return (4 + int64(len(x.name)) + int64(len(x.value)) + 3) &^ 3 }

func (x xent) encode(b []byte) {
	b[0] = byte(len(x.name))
	b[1] = x.idx
	binary.LittleEndian.PutUint16(b[2:], uint16(len(x.value)))
	copy(b[4:], x.name)
	copy(b[4+len(x.name):], x.value)
}

func inodeXattrs(n *wnode) ([]xent, error) {
	keys := make([]string, 0, len(n.meta.Xattrs))
	for k := range n.meta.Xattrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []xent
	for _, k := range keys {
		idx, suffix, ok := splitXattrName(k)
		if !ok {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("erofs: %s: xattr %q has no EROFS name prefix (user., trusted., security., system.posix_acl_*)", n.name, k))
		}
		v := n.meta.Xattrs[k]
		if len(suffix) > 255 || len(v) > 65535 {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("erofs: %s: xattr %q too large", n.name, k))
		}
		out = append(out, xent{idx: idx, name: suffix, value: v, key: k + "\x00" + string(v)})
	}
	return out, nil
}

// buildSharedXattrs puts every (name, value) pair used by two or more inodes into the shared area
// (Android labels repeat across thousands of files) and encodes each inode's xattr body.
func (wr *writer) buildSharedXattrs() error {
	count := map[string]int{}
	all := make([][]xent, len(wr.inodes))
	byKey := map[string]xent{}
	for i, in := range wr.inodes {
		xs, err := inodeXattrs(in.first)
		if err != nil {
			return err
		}
		all[i] = xs
		for _, x := range xs {
			count[x.key]++
			byKey[x.key] = x
		}
	}
	var keys []string
	for k, c := range count {
		if c > 1 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	wr.sharedX = map[string]uint32{}
	var buf []byte
	for _, k := range keys {
		x := byKey[k]
		sz := x.size()
		if rem := wBlkSize - int64(len(buf))%wBlkSize; sz <= wBlkSize && sz > rem {
			buf = append(buf, make([]byte, rem)...) // keep entries inside one block
		}
		wr.sharedX[k] = uint32(len(buf) / 4)
		e := make([]byte, sz)
		x.encode(e)
		buf = append(buf, e...)
	}
	wr.xattrBuf = buf
	wr.xattrBlk = 1
	wr.dataBlk = 1 + (int64(len(buf))+wBlkSize-1)/wBlkSize
	for i, in := range wr.inodes {
		xs := all[i]
		if len(xs) == 0 {
			continue
		}
		var inline []byte
		for _, x := range xs {
			if id, ok := wr.sharedX[x.key]; ok && len(in.shared) < 255 {
				in.shared = append(in.shared, id)
				continue
			}
			e := make([]byte, x.size())
			x.encode(e)
			inline = append(inline, e...)
		}
		in.inline = inline
		in.xsize = 12 + 4*int64(len(in.shared)) + int64(len(inline))
		if (in.xsize-12)/4+1 > 65535 {
			return failure.Kinded(failure.ErrInvalid, fmt.Errorf("erofs: %s: xattrs too large", in.first.name))
		}
	}
	for _, in := range wr.inodes {
		m := in.first.meta
		in.extended = m.UID > 0xffff || m.GID > 0xffff || in.size > 0xffffffff || in.nlink > 0xffff
	}
	return nil
}

// baseRec is an inode's header plus xattrs.
func (in *winode) baseRec() int64 { return in.isize() + in.xsize }

// canInline reports whether a tail of n bytes fits in one block with the inode.
func (in *winode) canInline(n int64) bool { return n > 0 && in.baseRec()+n <= wBlkSize }

func (wr *writer) writeBlocks(b []byte, blk int64) error {
	if len(b) == 0 {
		return nil
	}
	if _, err := wr.w.WriteAt(b, blk<<wBlkBits); err != nil {
		return fmt.Errorf("erofs: write: %w", err)
	}
	return nil
}

// placeFlat stores data as full blocks in the data area plus an inline tail when it fits.
func (wr *writer) placeFlat(in *winode, data []byte) error {
	n := int64(len(data))
	in.size = n
	full := n &^ (wBlkSize - 1)
	tail := n - full
	in.layout = layoutFlatPlain
	if in.canInline(tail) {
		in.layout = layoutFlatInline
		in.tail = append([]byte(nil), data[full:]...)
	} else {
		full = n
	}
	if full > 0 {
		in.blkaddr = uint32(wr.dataBlk)
		padded := data[:full]
		if full%wBlkSize != 0 {
			padded = make([]byte, (full+wBlkSize-1)&^(wBlkSize-1))
			copy(padded, data[:full])
		}
		if err := wr.writeBlocks(padded, wr.dataBlk); err != nil {
			return err
		}
		wr.dataBlk += int64(len(padded)) / wBlkSize
	}
	return nil
}

func (wr *writer) finish() error {
	// directories and symlinks: their data goes after the file data
	type dirEnt struct {
		name  string
		ino   *winode
		ftype uint8
	}
	dirs := map[*winode][]dirEnt{}
	var walk func(n, parent *wnode)
	walk = func(n, parent *wnode) {
		in := n.ino
		if in.first != n {
			return
		}
		switch {
		case n.meta.Mode.IsDir():
			ents := []dirEnt{{".", in, ftDir}, {"..", parent.ino, ftDir}}
			for _, c := range n.children {
				ents = append(ents, dirEnt{c.base, c.ino, fileType(c.meta.Mode)})
			}
			sort.Slice(ents, func(i, j int) bool { return ents[i].name < ents[j].name })
			dirs[in] = ents
			for _, c := range n.children {
				walk(c, n)
			}
		}
	}
	walk(wr.root, wr.root)
	// Lay directory blocks out now (their sizes depend on names only); fill nids in later.
	type dirLayout struct {
		blocks [][]dirEnt
		size   int64
	}
	layouts := map[*winode]*dirLayout{}
	for _, in := range wr.inodes {
		n := in.first
		switch {
		case n.meta.Mode.IsDir():
			l := &dirLayout{}
			var cur []dirEnt
			used := 0
			for _, e := range dirs[in] {
				need := direntSize + len(e.name)
				if used+need > wBlkSize {
					l.blocks = append(l.blocks, cur)
					cur, used = nil, 0
				}
				cur = append(cur, e)
				used += need
			}
			l.blocks = append(l.blocks, cur)
			l.size = int64(len(l.blocks)-1)*wBlkSize + int64(used)
			layouts[in] = l
			in.size = l.size
			// reserve blocks; content is written once nids are known
			full := l.size &^ (wBlkSize - 1)
			tail := l.size - full
			in.layout = layoutFlatPlain
			if in.canInline(tail) {
				in.layout = layoutFlatInline
			} else {
				full = l.size
			}
			if full > 0 {
				in.blkaddr = uint32(wr.dataBlk)
				wr.dataBlk += (full + wBlkSize - 1) / wBlkSize
			}
		case n.meta.Mode&fs.ModeSymlink != 0:
			if err := wr.placeFlat(in, []byte(n.meta.Target)); err != nil {
				return err
			}
		case n.meta.Mode&fs.ModeDevice != 0:
			in.blkaddr = uint32(n.meta.Rdev)
		}
	}
	// Metadata area after the data.
	metaBlk := wr.dataBlk
	if metaBlk > 0xffffffff {
		return failure.Kinded(failure.ErrInvalid, errors.New("erofs: image too large"))
	}
	al := newMetaAlloc()
	al.alloc(32) // keep nid 0 unused
	for _, in := range wr.inodes {
		in.rec = in.baseRec()
		switch in.layout {
		case layoutFlatInline:
			in.rec += in.size & (wBlkSize - 1)
		case layoutCompressFull:
			in.rec = (in.rec+7)&^7 + 16 + int64(len(in.zindex))
		}
		off := al.alloc((in.rec + 31) &^ 31)
		in.nid = uint64(off / 32)
	}
	if wr.root.ino.nid > 0xffff {
		return errors.New("erofs: root inode placed beyond nid 65535")
	}
	meta := make([]byte, al.blocks*wBlkSize)
	for _, in := range wr.inodes {
		if l := layouts[in]; l != nil {
			var data []byte
			for bi, blk := range l.blocks {
				b := make([]byte, wBlkSize)
				nameoff := direntSize * len(blk)
				for j, e := range blk {
					de := b[j*direntSize:]
					binary.LittleEndian.PutUint64(de, e.ino.nid)
					binary.LittleEndian.PutUint16(de[8:], uint16(nameoff))
					de[10] = e.ftype
					nameoff += copy(b[nameoff:], e.name)
				}
				if bi == len(l.blocks)-1 {
					b = b[:nameoff]
				}
				data = append(data, b...)
			}
			full := l.size &^ (wBlkSize - 1)
			if in.layout == layoutFlatInline {
				in.tail = data[full:]
			} else {
				full = l.size
			}
			if full > 0 {
				padded := make([]byte, (full+wBlkSize-1)&^(wBlkSize-1))
				copy(padded, data[:full])
				if err := wr.writeBlocks(padded, int64(in.blkaddr)); err != nil {
					return err
				}
			}
		}
		in.encode(meta[in.nid*32:], wr.ts)
	}
	if err := wr.writeBlocks(meta, metaBlk); err != nil {
		return err
	}
	if err := wr.writeBlocks(wr.xattrBuf, wr.xattrBlk); err != nil {
		return err
	}
	blocks := metaBlk + al.blocks
	sb := wr.superblock(blocks, metaBlk)
	if _, err := wr.w.WriteAt(sb, 0); err != nil {
		return fmt.Errorf("erofs: write: %w", err)
	}
	wr.res.Blocks = blocks
	wr.res.Size = blocks * wBlkSize
	wr.res.Inodes = int64(len(wr.inodes))
	return nil
}

func fileType(m fs.FileMode) uint8 {
	switch {
	case m.IsDir():
		return ftDir
	case m&fs.ModeSymlink != 0:
		return ftSymlink
	case m&fs.ModeCharDevice != 0:
		return ftChr
	case m&fs.ModeDevice != 0:
		return ftBlk
	case m&fs.ModeNamedPipe != 0:
		return ftFifo
	case m&fs.ModeSocket != 0:
		return ftSock
	}
	return ftReg
}

// encode writes the inode record (header, xattrs, inline tail or compression indexes) into b.
func (in *winode) encode(b []byte, ts time.Time) {
	le := binary.LittleEndian
	m := in.first.meta
	format := uint16(in.layout) << 1
	var icount uint16
	if in.xsize > 0 {
		icount = uint16((in.xsize-12)/4 + 1)
	}
	if in.extended {
		le.PutUint16(b, format|1)
		le.PutUint16(b[2:], icount)
		le.PutUint16(b[4:], uint16(in.mode))
		le.PutUint64(b[8:], uint64(in.size))
		le.PutUint32(b[16:], in.u())
		le.PutUint32(b[20:], in.ino)
		le.PutUint32(b[24:], m.UID)
		le.PutUint32(b[28:], m.GID)
		le.PutUint64(b[32:], uint64(ts.Unix()))
		le.PutUint32(b[40:], uint32(ts.Nanosecond()))
		le.PutUint32(b[44:], in.nlink)
	} else {
		le.PutUint16(b, format)
		le.PutUint16(b[2:], icount)
		le.PutUint16(b[4:], uint16(in.mode))
		le.PutUint16(b[6:], uint16(in.nlink))
		le.PutUint32(b[8:], uint32(in.size))
		le.PutUint32(b[16:], in.u())
		le.PutUint32(b[20:], in.ino)
		le.PutUint16(b[24:], uint16(m.UID))
		le.PutUint16(b[26:], uint16(m.GID))
	}
	p := in.isize()
	if in.xsize > 0 {
		b[p+4] = byte(len(in.shared))
		q := p + 12
		for _, id := range in.shared {
			le.PutUint32(b[q:], id)
			q += 4
		}
		copy(b[q:], in.inline)
		p += in.xsize
	}
	switch in.layout {
	case layoutFlatInline:
		copy(b[p:], in.tail)
	case layoutCompressFull:
		p = (p + 7) &^ 7
		le.PutUint16(b[p+4:], in.zadvise)
		copy(b[p+16:], in.zindex)
	}
}

func (in *winode) u() uint32 {
	if in.layout == layoutCompressFull {
		return in.cblocks
	}
	return in.blkaddr
}

func (wr *writer) superblock(blocks, metaBlk int64) []byte {
	blk := make([]byte, wBlkSize)
	b := blk[superOffset:]
	le := binary.LittleEndian
	le.PutUint32(b, superMagic)
	le.PutUint32(b[8:], compatSBChecksum|compatMTime)
	b[12] = wBlkBits
	le.PutUint16(b[14:], uint16(wr.root.ino.nid))
	le.PutUint64(b[16:], uint64(len(wr.inodes)))
	le.PutUint64(b[24:], uint64(wr.ts.Unix()))
	le.PutUint32(b[32:], uint32(wr.ts.Nanosecond()))
	le.PutUint32(b[36:], uint32(blocks))
	le.PutUint32(b[40:], uint32(metaBlk))
	le.PutUint32(b[44:], uint32(wr.xattrBlk))
	copy(b[48:], wr.opt.UUID[:])
	copy(b[64:80], wr.opt.VolumeName)
	var incompat uint32
	if wr.compress {
		incompat |= incompatZeroPadding
		le.PutUint16(b[84:], 0xffff) // lz4 max distance
	}
	if wr.big {
		incompat |= incompatComprCfgs
		le.PutUint16(b[84:], 1<<algLZ4) // available algorithms
		cfg := b[superSize:]
		le.PutUint16(cfg, 14)
		le.PutUint16(cfg[2:], 0xffff)
		le.PutUint16(cfg[4:], uint16(wr.budget/wBlkSize))
	}
	le.PutUint32(b[80:], incompat)
	le.PutUint32(b[4:], sbChecksum(b[:wBlkSize-superOffset]))
	return blk
}

// metaAlloc places inode records in metadata blocks, best fit, never letting a record that fits in one
// block cross a block boundary (inline tails must not).
type metaAlloc struct {
	blocks int64
	free   [wBlkSize/32 + 1][]int64 // free space (in 32-byte units) → blocks with that much room
}

func newMetaAlloc() *metaAlloc { return &metaAlloc{} }

func (a *metaAlloc) alloc(n int64) int64 {
	units := n / 32
	if n <= wBlkSize {
		for f := units; f <= wBlkSize/32; f++ {
			if l := a.free[f]; len(l) > 0 {
				blk := l[0]
				a.free[f] = l[1:]
				off := blk*wBlkSize + (wBlkSize - f*32)
				if rem := f - units; rem > 0 {
					a.free[rem] = append(a.free[rem], blk)
				}
				return off
			}
		}
	}
	blk := a.blocks
	nb := (n + wBlkSize - 1) / wBlkSize
	a.blocks += nb
	if rem := (nb*wBlkSize - n) / 32; rem > 0 {
		last := blk + nb - 1
		a.free[rem] = append(a.free[rem], last)
	}
	return blk * wBlkSize
}
