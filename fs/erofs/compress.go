package erofs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/romforge/romforge/fs/erofs/lz4block"
)

// zext is one extent of a compressed file.
type zext struct {
	la    int64 // file offset
	llen  int64
	plain bool
	cblks int64
	blk   int64 // first block (relative to the segment's output while compressing, absolute later)
}

type segJob struct {
	in   *winode
	off  int64
	data []byte
	n    int64 // logical bytes when data is nil (a stored job: exts and phys copied from the source)
	last bool
	err  error
	done chan struct{}
	exts []zext
	phys []byte
}

// compressSegment cuts data into fixed-output extents: each compressed extent fills at most budget bytes
// (whole blocks, data at the end, zero padding first as 0padding requires) and must save at least one
// block over storing its input; otherwise one block is stored uncompressed.
func (wr *writer) compressSegment(c *lz4block.Compressor, j *segJob, dst []byte) {
	data := j.data
	pos := 0
	for pos < len(data) {
		lim := min(len(data), pos+maxExtentIn)
		n, w := c.CompressDestSize(data[pos:lim], dst[:wr.budget])
		cblks := (w + wBlkSize - 1) / wBlkSize
		if n > 0 && (n+wBlkSize-1)/wBlkSize > cblks {
			blk := int64(len(j.phys) / wBlkSize)
			j.phys = append(j.phys, make([]byte, cblks*wBlkSize-w)...)
			j.phys = append(j.phys, dst[:w]...)
			j.exts = append(j.exts, zext{la: j.off + int64(pos), llen: int64(n), cblks: int64(cblks), blk: blk})
			pos += n
			continue
		}
		k := min(wBlkSize, len(data)-pos)
		blk := int64(len(j.phys) / wBlkSize)
		j.phys = append(j.phys, data[pos:pos+k]...)
		if k < wBlkSize {
			j.phys = append(j.phys, make([]byte, wBlkSize-k)...)
		}
		j.exts = append(j.exts, zext{la: j.off + int64(pos), llen: int64(k), plain: true, cblks: 1, blk: blk})
		pos += k
	}
}

// writeFiles streams every regular file through the compressors (in parallel) and writes the results in
// tree order, so the output does not depend on scheduling.
func (wr *writer) writeFiles(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	order := make(chan *segJob, 2*wr.opt.Workers+2)
	work := make(chan *segJob, 2*wr.opt.Workers+2)
	var wg sync.WaitGroup
	if wr.compress {
		for range wr.opt.Workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := lz4block.NewCompressor(wr.level)
				dst := make([]byte, wr.budget)
				for j := range work {
					if ctx.Err() == nil {
						wr.compressSegment(c, j, dst)
					}
					close(j.done)
				}
			}()
		}
	}
	go func() {
		defer close(order)
		defer close(work)
		for _, in := range wr.inodes {
			if !in.first.meta.Mode.IsRegular() {
				continue
			}
			if err := wr.produce(ctx, in, order, work); err != nil {
				return
			}
		}
	}()
	var err error
	st := &fileState{}
	for j := range order {
		<-j.done
		if err != nil {
			continue // drain
		}
		if err = ctx.Err(); err != nil {
			cancel()
			continue
		}
		if j.err != nil {
			err = j.err
			cancel()
			continue
		}
		if err = wr.consume(j, st); err != nil {
			cancel()
		}
	}
	wg.Wait()
	return err
}

func (wr *writer) produce(ctx context.Context, in *winode, order, work chan<- *segJob) error {
	send := func(j *segJob) error {
		select {
		case order <- j:
		case <-ctx.Done():
			return ctx.Err()
		}
		if wr.compress && j.err == nil && len(j.data) > 0 && !j.in.storeFlat {
			select {
			case work <- j:
			case <-ctx.Done():
				close(j.done)
				return ctx.Err()
			}
		} else {
			close(j.done)
		}
		return nil
	}
	if in.size == 0 {
		return send(&segJob{in: in, last: true, done: make(chan struct{})})
	}
	f, err := wr.t.Open(in.first.name)
	if err != nil {
		send(&segJob{in: in, err: fmt.Errorf("erofs: %w", err), done: make(chan struct{})})
		return err
	}
	defer f.Close()
	if wr.compress && wr.opt.ReuseStored {
		if s, ok := f.(interface{ StoredLayout() (*StoredLayout, bool) }); ok {
			if l, ok := s.StoredLayout(); ok {
				switch {
				case l.Flat:
					in.storeFlat = true
					wr.reused.Add(in.size)
				case wr.canReuse(in, l):
					wr.reused.Add(in.size)
					return wr.produceStored(in, l, send)
				}
			}
		}
	}
	for off := int64(0); off < in.size; off += segSize {
		n := min(segSize, in.size-off)
		buf := make([]byte, n)
		if _, err := io.ReadFull(f, buf); err != nil {
			err = fmt.Errorf("erofs: reading %s: %w", in.first.name, err)
			send(&segJob{in: in, err: err, done: make(chan struct{})})
			return err
		}
		if err := send(&segJob{in: in, off: off, data: buf, last: off+n >= in.size, done: make(chan struct{})}); err != nil {
			return err
		}
	}
	return nil
}

// fileState is the writer's view of the file being assembled.
type fileState struct {
	startBlk int64
	exts     []zext
	raw      [][]byte
	phys     [][]byte
	streamed bool // compressed blocks already written (file too big to buffer)
}

func (wr *writer) consume(j *segJob, st *fileState) error {
	in := j.in
	if j.off == 0 {
		*st = fileState{startBlk: wr.dataBlk}
	}
	n := int64(len(j.data))
	if j.data == nil {
		n = j.n
	}
	wr.task.Add(n)
	wr.res.UncompressedBytes += n
	if !wr.compress || in.storeFlat {
		return wr.consumeFlat(j, st)
	}
	buffer := in.size <= keepRawLimit
	if buffer {
		st.raw = append(st.raw, j.data)
		st.phys = append(st.phys, j.phys)
	}
	base := wr.dataBlk
	if !buffer {
		if err := wr.writeBlocks(j.phys, wr.dataBlk); err != nil {
			return err
		}
		st.streamed = true
	}
	for _, e := range j.exts {
		e.blk += base
		st.exts = append(st.exts, e)
	}
	wr.dataBlk += int64(len(j.phys)) / wBlkSize
	if !j.last {
		return nil
	}
	cblocks := wr.dataBlk - st.startBlk
	full := in.size / wBlkSize
	tail := in.size % wBlkSize
	rawBlocks := full
	if tail > 0 && !in.canInline(tail) {
		rawBlocks++
	}
	if in.size > 0 && cblocks < rawBlocks {
		if buffer {
			blk := st.startBlk
			for _, p := range st.phys {
				if err := wr.writeBlocks(p, blk); err != nil {
					return err
				}
				blk += int64(len(p)) / wBlkSize
			}
		}
		in.layout = layoutCompressFull
		in.cblocks = uint32(cblocks)
		in.zindex = buildIndex(in.size, st.exts, wr.big)
		if wr.big {
			in.zadvise = advBigPcluster1
		}
		wr.res.CompressedBytes += cblocks * wBlkSize
		wr.res.CompressedFiles++
		return nil
	}
	// Not worth it: store the file uncompressed instead.
	wr.dataBlk = st.startBlk
	if buffer {
		var all []byte
		if len(st.raw) == 1 {
			all = st.raw[0]
		} else {
			for _, r := range st.raw {
				all = append(all, r...)
			}
		}
		if err := wr.placeFlat(in, all); err != nil {
			return err
		}
		wr.res.CompressedBytes += (wr.dataBlk-st.startBlk)*wBlkSize + int64(len(in.tail))
		return nil
	}
	return wr.rewriteFlat(in)
}

// consumeFlat writes an uncompressed file's segments: full blocks now, the tail inline when it fits.
func (wr *writer) consumeFlat(j *segJob, st *fileState) error {
	in := j.in
	data := j.data
	full := int64(len(data))
	if j.last {
		full &^= wBlkSize - 1
	}
	if full > 0 {
		if err := wr.writeBlocks(data[:full], wr.dataBlk); err != nil {
			return err
		}
		wr.dataBlk += full / wBlkSize
	}
	if !j.last {
		return nil
	}
	tail := data[full:]
	in.layout = layoutFlatPlain
	switch {
	case len(tail) == 0:
	case in.canInline(int64(len(tail))):
		in.layout = layoutFlatInline
		in.tail = tail
	default:
		b := make([]byte, wBlkSize)
		copy(b, tail)
		if err := wr.writeBlocks(b, wr.dataBlk); err != nil {
			return err
		}
		wr.dataBlk++
	}
	if wr.dataBlk > st.startBlk {
		in.blkaddr = uint32(st.startBlk)
	}
	wr.res.CompressedBytes += (wr.dataBlk-st.startBlk)*wBlkSize + int64(len(in.tail))
	return nil
}

// canReuse says whether a source file's compressed extents can be copied into this image as they are:
// pclusters this image's index can describe and a saving the consume step would keep (it never falls
// back to storing a copied file uncompressed, for which it would need the plain bytes).
func (wr *writer) canReuse(in *winode, l *StoredLayout) bool {
	var cblocks int64
	for _, e := range l.Extents {
		cblocks += e.Blocks
		if e.Plain || e.Blocks == 1 {
			continue
		}
		// A multi-block pcluster needs big pclusters here, and a NONHEAD lcluster to record its size.
		if !wr.big || e.Blocks*wBlkSize > int64(wr.budget) || (e.Offset>>wBlkBits+1)<<wBlkBits >= e.Offset+e.Length {
			return false
		}
	}
	rawBlocks := in.size / wBlkSize
	if tail := in.size % wBlkSize; tail > 0 && !in.canInline(tail) {
		rawBlocks++
	}
	return len(l.Extents) > 0 && cblocks < rawBlocks
}

// produceStored sends a file's copied clusters in jobs of about a segment of physical data.
func (wr *writer) produceStored(in *winode, l *StoredLayout, send func(*segJob) error) error {
	exts := l.Extents
	for len(exts) > 0 {
		j := &segJob{in: in, off: exts[0].Offset, done: make(chan struct{})}
		var k int
		for k < len(exts) && (k == 0 || int64(len(j.phys))+exts[k].Blocks*wBlkSize <= segSize) {
			e := exts[k]
			blk := int64(len(j.phys)) / wBlkSize
			j.phys = append(j.phys, make([]byte, e.Blocks*wBlkSize)...)
			if _, err := l.Src.ReadAt(j.phys[blk*wBlkSize:], e.Addr); err != nil && !errors.Is(err, io.EOF) {
				err = fmt.Errorf("erofs: copying %s from the source image: %w", in.first.name, err)
				send(&segJob{in: in, err: err, done: make(chan struct{})})
				return err
			}
			j.exts = append(j.exts, zext{la: e.Offset, llen: e.Length, plain: e.Plain, cblks: e.Blocks, blk: blk})
			j.n += e.Length
			k++
		}
		exts = exts[k:]
		j.last = len(exts) == 0
		if err := send(j); err != nil {
			return err
		}
	}
	return nil
}

// rewriteFlat re-reads a large file that did not compress and stores it uncompressed.
func (wr *writer) rewriteFlat(in *winode) error {
	f, err := wr.t.Open(in.first.name)
	if err != nil {
		return fmt.Errorf("erofs: %w", err)
	}
	defer f.Close()
	st := &fileState{startBlk: wr.dataBlk}
	for off := int64(0); off < in.size; off += segSize {
		n := min(segSize, in.size-off)
		buf := make([]byte, n)
		if _, err := io.ReadFull(f, buf); err != nil {
			return fmt.Errorf("erofs: re-reading %s: %w", in.first.name, err)
		}
		if err := wr.consumeFlat(&segJob{in: in, off: off, data: buf, last: off+n >= in.size}, st); err != nil {
			return err
		}
	}
	return nil
}

// buildIndex encodes full (legacy) lcluster indexes, one per 4 KiB of the file.
func buildIndex(size int64, exts []zext, big bool) []byte {
	total := (size + wBlkSize - 1) / wBlkSize
	out := make([]byte, total*8)
	le := binary.LittleEndian
	ei := 0
	for lcn := int64(0); lcn < total; lcn++ {
		// advance to the last extent starting at or before this lcluster's end
		for ei+1 < len(exts) && exts[ei+1].la>>wBlkBits <= lcn {
			ei++
		}
		e := exts[ei]
		b := out[lcn*8:]
		if e.la>>wBlkBits == lcn {
			typ := uint16(lclusterHead1)
			if e.plain {
				typ = lclusterPlain
			}
			le.PutUint16(b, typ)
			le.PutUint16(b[2:], uint16(e.la&(wBlkSize-1)))
			le.PutUint32(b[4:], uint32(e.blk))
			continue
		}
		head := e.la >> wBlkBits
		next := total
		if ei+1 < len(exts) {
			next = exts[ei+1].la >> wBlkBits
		}
		d0 := uint16(lcn - head)
		if big && d0 == 1 && !e.plain {
			d0 = d0Cblkcnt | uint16(e.cblks)
		}
		if lcn == total-1 && size%wBlkSize != 0 {
			// The file ends inside this lcluster: a head marking the end lets readers (the kernel
			// included) find where the last extent stops.
			le.PutUint16(b, lclusterPlain)
			le.PutUint16(b[2:], uint16(size%wBlkSize))
			continue
		}
		le.PutUint16(b, lclusterNonhead)
		le.PutUint16(b[2:], uint16(e.la&(wBlkSize-1)))
		le.PutUint16(b[4:], d0)
		le.PutUint16(b[6:], uint16(next-lcn))
	}
	return out
}
