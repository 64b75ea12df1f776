package erofs

import "io"

// StoredLayout says how a file's bytes lie in its image, so that a writer making a new image of a tree
// that still holds this file can copy them instead of compressing them again: unchanged files are most
// of a patched system image, and recompressing them with lz4hc is most of the cost of rebuilding it.
type StoredLayout struct {
	// Flat: the image stores the file uncompressed (its writer found compression did not pay).
	Flat bool
	// Extents of a compressed file in file order, covering it exactly; every one is LZ4 (or plain) in
	// whole 4 KiB blocks with the compressed bytes at the end of their pcluster (0padding).
	Extents []StoredExtent
	// Src reads the physical clusters (the image).
	Src io.ReaderAt
}

// StoredExtent is one extent of a compressed file.
type StoredExtent struct {
	Offset, Length int64 // logical: the bytes of the file it decodes to
	Plain          bool  // stored uncompressed in one block
	Addr           int64 // byte offset of its physical cluster in the image
	Blocks         int64 // size of the physical cluster in 4 KiB blocks
}

// StoredLayout describes how fl is stored; ok is false when the layout is one a writer should not copy
// (chunk-based, inline or fragment tails, interlaced plain blocks, other algorithms or block sizes).
func (fl *File) StoredLayout() (l *StoredLayout, ok bool) {
	if fl.d == nil || fl.f.blksz != wBlkSize {
		return nil, false
	}
	switch fl.in.layout {
	case layoutFlatPlain, layoutFlatInline:
		// "Stored flat" is a decision worth keeping only when the image could have compressed it.
		if !fl.f.lz4Enabled() {
			return nil, false
		}
		return &StoredLayout{Flat: true, Src: fl.f.img}, true
	case layoutCompressFull, layoutCompressComp:
	default:
		return nil, false
	}
	z := fl.d.z
	if z == nil || z.lcs != wBlkSize || z.tailHead >= 0 || z.algs[0] != algLZ4 ||
		z.advise&^(advCompacted2B|advBigPcluster1|advBigPcluster2) != 0 || fl.f.sb.incompat&incompatZeroPadding == 0 {
		return nil, false
	}
	l = &StoredLayout{Src: fl.f.img}
	// Bound the walk: a file has at most one extent per 4 KiB lcluster.
	for off, n := int64(0), int64(0); off < fl.in.size; n++ {
		if n > z.totalidx {
			return nil, false
		}
		e, err := z.mapOffset(off)
		if err != nil || e.la != off || e.llen <= 0 || e.plen%wBlkSize != 0 || e.pa%wBlkSize != 0 {
			return nil, false
		}
		if e.plain && (e.plen != wBlkSize || e.llen > wBlkSize) || !e.plain && e.alg != algLZ4 {
			return nil, false
		}
		l.Extents = append(l.Extents, StoredExtent{Offset: e.la, Length: e.llen, Plain: e.plain, Addr: e.pa, Blocks: e.plen / wBlkSize})
		off = e.la + e.llen
	}
	return l, true
}

// lz4Enabled reports whether the image was made with LZ4 compression available.
func (f *FS) lz4Enabled() bool {
	if f.sb.incompat&incompatComprCfgs != 0 {
		return f.sb.u1&(1<<algLZ4) != 0
	}
	return f.sb.incompat&incompatZeroPadding != 0
}
