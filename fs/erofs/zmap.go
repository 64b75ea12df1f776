package erofs

import (
	"encoding/binary"

	"github.com/romforge/romforge/fs/erofs/lz4block"
)

// maxExtentBytes bounds one decompressed extent, so a hostile index cannot make us allocate without limit.
const maxExtentBytes = 64 << 20

// zmap maps file offsets of a compressed inode to physical clusters (fixed-output-size extents).
type zmap struct {
	f        *FS
	in       *inode
	advise   uint16
	algs     [2]int
	lbits    uint
	lcs      int64
	totalidx int64
	compact  bool
	base     int64 // first index entry (full) or ebase (compact)
	c4init   int64
	c2b      int64

	idataSize int64
	idataOff  int64
	tailHead  int64 // head lcluster of the inline tail extent, -1 if none
}

type lcluster struct {
	typ        int
	clusterofs int64
	pblk       int64
	delta0     int64
	delta1     int64
	cblks      int64
	nextpack   int64
}

type extent struct {
	la, llen int64
	pa, plen int64
	plain    bool
	alg      int
}

func newZmap(f *FS, in *inode) (*zmap, error) {
	hdrOff := (in.dataEnd() + 7) &^ 7
	h, err := f.readMeta(hdrOff, 8)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	z := &zmap{f: f, in: in, tailHead: -1}
	z.advise = le.Uint16(h[4:])
	z.algs = [2]int{int(h[6] & 15), int(h[6] >> 4)}
	if h[7]&0x80 != 0 || z.advise&advFragment != 0 {
		return nil, errAt(hdrOff, "inode %d: fragment (packed) data is not supported", in.nid)
	}
	z.lbits = f.blkbits + uint(h[7]&7)
	z.lcs = 1 << z.lbits
	z.totalidx = (in.size + z.lcs - 1) >> z.lbits
	if in.layout == layoutCompressFull {
		z.base = hdrOff + 16
		if err := z.checkIndexArea(z.base + z.totalidx*8); err != nil {
			return nil, err
		}
	} else {
		z.compact = true
		z.base = hdrOff + 8
		if z.lbits > 14 {
			return nil, errAt(hdrOff, "inode %d: compact indexes with %d-bit lclusters", in.nid, z.lbits)
		}
		z.c4init = (32 - z.base%32) / 4
		if z.c4init == 8 {
			z.c4init = 0
		}
		if z.advise&advCompacted2B != 0 && z.c4init < z.totalidx {
			if z.lbits != 12 {
				return nil, errAt(hdrOff, "inode %d: 2-byte compact indexes need 4 KiB lclusters", in.nid)
			}
			z.c2b = (z.totalidx - z.c4init) &^ 15
		}
		rest := max(0, z.totalidx-z.c4init-z.c2b)
		end := z.base + min(z.c4init, z.totalidx)*4 + z.c2b*2 + rest*4
		if err := z.checkIndexArea((end + 7) &^ 7); err != nil {
			return nil, err
		}
	}
	if z.advise&advInlinePclust != 0 {
		z.idataSize = int64(le.Uint16(h[2:]))
		if z.totalidx == 0 {
			return nil, errAt(hdrOff, "inode %d: inline pcluster in an empty file", in.nid)
		}
		m, err := z.load(z.totalidx - 1)
		if err != nil {
			return nil, err
		}
		z.idataOff = m.nextpack
		ext, err := z.mapOffset(in.size - 1)
		if err != nil {
			return nil, err
		}
		z.tailHead = ext.la >> z.lbits
		if z.idataSize == 0 || (z.idataOff&(f.blksz-1))+z.idataSize > f.blksz {
			return nil, errAt(z.idataOff, "inode %d: inline pcluster of %d bytes crosses a block", in.nid, z.idataSize)
		}
	}
	return z, nil
}

func (z *zmap) checkIndexArea(end int64) error {
	if end > z.f.size || end < z.base {
		return errAt(z.in.off, "inode %d: compression indexes for %d lclusters run past the image end", z.in.nid, z.totalidx)
	}
	return nil
}

func (z *zmap) corrupt(format string, args ...any) error {
	return errAt(z.in.off, "inode %d: "+format, append([]any{z.in.nid}, args...)...)
}

func (z *zmap) load(lcn int64) (lcluster, error) {
	if lcn < 0 || lcn >= z.totalidx {
		return lcluster{}, z.corrupt("lcluster %d out of range 0..%d", lcn, z.totalidx)
	}
	if z.compact {
		return z.loadCompact(lcn)
	}
	pos := z.base + lcn*8
	b, err := z.f.readMeta(pos, 8)
	if err != nil {
		return lcluster{}, err
	}
	le := binary.LittleEndian
	m := lcluster{typ: int(le.Uint16(b) & 3), nextpack: pos + 8}
	if m.typ == lclusterNonhead {
		m.clusterofs = z.lcs
		m.delta0 = int64(le.Uint16(b[4:]))
		m.delta1 = int64(le.Uint16(b[6:]))
		if m.delta0&d0Cblkcnt != 0 {
			if z.advise&(advBigPcluster1|advBigPcluster2) == 0 {
				return m, z.corrupt("CBLKCNT without big pclusters at lcluster %d", lcn)
			}
			m.cblks = m.delta0 &^ d0Cblkcnt
			m.delta0 = 1
		}
		return m, nil
	}
	m.clusterofs = int64(le.Uint16(b[2:]))
	if m.clusterofs >= z.lcs {
		return m, z.corrupt("cluster offset %d at lcluster %d", m.clusterofs, lcn)
	}
	m.pblk = int64(le.Uint32(b[4:]))
	return m, nil
}

func (z *zmap) loadCompact(lcn int64) (lcluster, error) {
	pos := z.base
	shift := int64(2)
	switch {
	case lcn < z.c4init:
	case lcn < z.c4init+z.c2b:
		pos += z.c4init * 4
		lcn -= z.c4init
		shift = 1
	default:
		pos += z.c4init*4 + z.c2b*2
		lcn -= z.c4init + z.c2b
	}
	pos += lcn << shift
	vcnt := int64(2)
	if shift == 1 {
		vcnt = 16
	}
	packSize := vcnt << shift
	packStart := pos &^ (packSize - 1)
	if pos < packStart {
		return lcluster{}, z.corrupt("bad compact index position")
	}
	pack, err := z.f.readMeta(packStart, packSize)
	if err != nil {
		return lcluster{}, err
	}
	lobits := max(z.lbits, 12)
	encodebits := ((packSize - 4) * 8) / vcnt
	i := (pos - packStart) >> shift
	decode := func(i int64) (int, int64) {
		bit := encodebits * i
		var v uint32
		for k := int64(0); k < 4 && bit/8+k < packSize; k++ {
			v |= uint32(pack[bit/8+k]) << (8 * k)
		}
		v >>= bit & 7
		return int(v>>lobits) & 3, int64(v & (1<<lobits - 1))
	}
	m := lcluster{nextpack: packStart + packSize}
	typ, lo := decode(i)
	m.typ = typ
	big := z.advise&advBigPcluster1 != 0
	if typ == lclusterNonhead {
		m.clusterofs = z.lcs
		// lookahead distance: NONHEADs up to the next head within the pack, plus the last one's delta
		d1 := int64(0)
		var l int64
		for j := i; j < vcnt; j++ {
			t, lj := decode(j)
			l = lj
			if t != lclusterNonhead {
				goto haveD1
			}
			d1++
		}
		if l&d0Cblkcnt == 0 {
			d1 += l - 1
		}
	haveD1:
		m.delta1 = d1
		if lo&d0Cblkcnt != 0 {
			if !big {
				return m, z.corrupt("CBLKCNT without big pclusters")
			}
			m.cblks = lo &^ d0Cblkcnt
			m.delta0 = 1
			return m, nil
		}
		if i+1 != vcnt {
			m.delta0 = lo
			return m, nil
		}
		// The pack's last entry stores delta[1]; derive delta[0] from the entry before it.
		pt, plo := decode(i - 1)
		switch {
		case pt != lclusterNonhead:
			plo = 0
		case plo&d0Cblkcnt != 0:
			plo = 1
		}
		m.delta0 = plo + 1
		return m, nil
	}
	m.clusterofs = lo
	if lo >= z.lcs {
		return m, z.corrupt("cluster offset %d", lo)
	}
	var nblk int64
	if !big {
		nblk = 1
		for i > 0 {
			i--
			t, l := decode(i)
			if t == lclusterNonhead {
				i -= l
			}
			if i >= 0 {
				nblk++
			}
		}
	} else {
		for i > 0 {
			i--
			t, l := decode(i)
			if t == lclusterNonhead {
				if l&d0Cblkcnt != 0 {
					i--
					nblk += l &^ d0Cblkcnt
					continue
				}
				if l <= 1 {
					return m, z.corrupt("big pcluster NONHEAD with delta %d", l)
				}
				i -= l - 2
				continue
			}
			nblk++
		}
	}
	m.pblk = int64(binary.LittleEndian.Uint32(pack[packSize-4:])) + nblk
	return m, nil
}

func (z *zmap) lookback(lcn int64) (int64, lcluster, error) {
	for n := int64(0); n <= z.totalidx; n++ {
		if lcn < 0 {
			return 0, lcluster{}, z.corrupt("extent head before the file start")
		}
		m, err := z.load(lcn)
		if err != nil {
			return 0, m, err
		}
		if m.typ != lclusterNonhead {
			return lcn, m, nil
		}
		if m.delta0 <= 0 {
			return 0, m, z.corrupt("NONHEAD lcluster %d with zero lookback distance", lcn)
		}
		lcn -= m.delta0
	}
	return 0, lcluster{}, z.corrupt("lookback loop")
}

// mapOffset finds the extent holding byte o.
func (z *zmap) mapOffset(o int64) (extent, error) {
	lcn := o >> z.lbits
	m, err := z.load(lcn)
	if err != nil {
		return extent{}, err
	}
	headlcn := lcn
	head := m
	switch {
	case m.typ == lclusterNonhead:
		headlcn, head, err = z.lookback(lcn - m.delta0)
	case o&(z.lcs-1) < m.clusterofs:
		headlcn, head, err = z.lookback(lcn - 1)
	}
	if err != nil {
		return extent{}, err
	}
	e := extent{la: headlcn<<z.lbits + head.clusterofs, plain: head.typ == lclusterPlain}
	switch head.typ {
	case lclusterHead1:
		e.alg = z.algs[0]
	case lclusterHead2:
		e.alg = z.algs[1]
	}
	// physical length
	big := head.typ == lclusterHead1 && z.advise&advBigPcluster1 != 0 ||
		head.typ != lclusterHead1 && z.advise&advBigPcluster2 != 0
	e.plen = z.lcs
	if big && (headlcn+1)<<z.lbits < z.in.size {
		n, err := z.load(headlcn + 1)
		if err != nil {
			return e, err
		}
		if n.typ == lclusterNonhead {
			if n.delta0 != 1 || n.cblks == 0 {
				return e, z.corrupt("no CBLKCNT after big pcluster head %d", headlcn)
			}
			e.plen = n.cblks << z.f.blkbits
		}
	} else if big {
		e.plen = z.f.blksz
	}
	e.pa = head.pblk << z.f.blkbits
	if z.tailHead >= 0 && headlcn == z.tailHead {
		e.pa, e.plen = z.idataOff, z.idataSize
	}
	// logical end: scan forward to the next head
	end := z.in.size
	for l, n := headlcn+1, 0; ; n++ {
		if l<<z.lbits >= z.in.size {
			break
		}
		if int64(n) > maxExtentBytes>>z.lbits {
			return e, z.corrupt("extent at lcluster %d longer than %d bytes", headlcn, maxExtentBytes)
		}
		nx, err := z.load(l)
		if err != nil {
			return e, err
		}
		if nx.typ != lclusterNonhead {
			end = l<<z.lbits + nx.clusterofs
			break
		}
		if nx.delta1 <= 0 {
			end = (l + 1) << z.lbits
			break
		}
		l += nx.delta1
	}
	end = min(end, z.in.size)
	e.llen = end - e.la
	if e.llen <= 0 || o < e.la || o >= end {
		return e, z.corrupt("extent [%d,%d) does not hold offset %d", e.la, end, o)
	}
	if e.llen > maxExtentBytes || !e.plain && e.llen > e.plen*256 || e.plain && e.llen > e.plen {
		return e, z.corrupt("extent of %d bytes from a %d-byte cluster", e.llen, e.plen)
	}
	if e.plen <= 0 || e.pa < 0 || e.pa+e.plen > z.f.size {
		return e, z.corrupt("cluster at %#x+%d is outside the image", e.pa, e.plen)
	}
	return e, nil
}

// decompress returns the extent's contents, reusing buf's memory when large enough.
func (z *zmap) decompress(e extent, buf []byte) ([]byte, error) {
	if cap(buf) >= int(e.llen) {
		buf = buf[:e.llen]
	} else {
		buf = make([]byte, e.llen)
	}
	if !e.plain && e.alg != algLZ4 {
		return nil, &FormatError{Off: e.pa, Msg: "unsupported compression " + algName(e.alg) +
			" (only lz4/lz4hc are supported; extract with fsck.erofs --extract)"}
	}
	in := make([]byte, e.plen)
	if _, err := z.f.img.ReadAt(in, e.pa); err != nil {
		return nil, errAt(e.pa, "reading cluster: %v", err)
	}
	if e.plain {
		if z.advise&advInterlaced != 0 && e.plen == z.f.blksz {
			start := e.la & (z.f.blksz - 1)
			n := copy(buf, in[start:])
			copy(buf[n:], in)
		} else {
			copy(buf, in[:e.llen])
		}
		return buf, nil
	}
	src := in
	if z.f.sb.incompat&incompatZeroPadding != 0 {
		lim := min(int64(len(in)), z.f.blksz)
		k := int64(0)
		for k < lim && in[k] == 0 {
			k++
		}
		if k == lim {
			return nil, errAt(e.pa, "inode %d: compressed cluster is all padding", z.in.nid)
		}
		src = in[k:]
	}
	n, err := lz4block.Decompress(src, buf)
	if err != nil || int64(n) != e.llen {
		return nil, errAt(e.pa, "inode %d: lz4 cluster decompressed to %d bytes, want %d (%v)", z.in.nid, n, e.llen, err)
	}
	return buf, nil
}
