package sparse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/progress"
)

// DefaultBlockSize is the block size AOSP uses for every sparse image.
const DefaultBlockSize = 4096

// WriteOptions control Write.
type WriteOptions struct {
	// BlockSize is the sparse block size in bytes (a multiple of 4); 0 means 4096.
	BlockSize int
	// DontCare writes runs of zero blocks as DONT_CARE holes instead of FILL 0 chunks (slightly
	// smaller; the flashed partition then keeps whatever those blocks held before).
	DontCare bool
	// HolesDontCare writes only the ranges the source declares zero without being read
	// (image.KnownZero: the unallocated space of a composed super image) as DONT_CARE; zero blocks
	// inside real data stay FILL 0, so a filesystem's zeroed tables are really zeroed on the device.
	HolesDontCare bool
	// CRC appends a CRC32 chunk over the whole expanded image.
	CRC bool
	// Progress receives "sparse scan" and "sparse write" tasks in bytes of the source; nil is fine.
	Progress progress.Reporter
}

// run is a stretch of the source with one encoding: raw bytes, a fill word, or a hole. n is in bytes
// and is a multiple of the block size except for a final raw run over a source whose size is not.
type run struct {
	block int64 // first block
	n     int64
	off   int64 // raw: where the bytes are in the data source
	fill  uint32
	kind  ChunkType
}

func (r *run) blocks(bs int64) int64 { return (r.n + bs - 1) / bs }

// ioBuf is how much of the source is read at once.
const ioBuf = 4 << 20

func checkBlockSize(bs int) (int64, error) {
	if bs == 0 {
		bs = DefaultBlockSize
	}
	if bs < 4 || bs%4 != 0 || bs > maxBlockSize {
		return 0, failure.Kinded(failure.ErrUsage, fmt.Errorf("sparse: block size %d is not a multiple of 4 in 4..%d", bs, maxBlockSize))
	}
	return int64(bs), nil
}

// scan classifies every block of src as libsparse does when it reads a raw image: a block made of one
// repeated 32-bit word is a fill (a hole too, with dontCare, when the word is 0), anything else is raw
// data; a final partial block is always raw. Neighbouring blocks of the same kind are merged.
func scan(ctx context.Context, src image.Image, bs int64, dontCare, holesDontCare bool, task progress.Task) ([]run, error) {
	size := src.Size()
	if (size+bs-1)/bs > math.MaxUint32 {
		return nil, failure.Kinded(failure.ErrInvalid, errTooManyBlocks(size, bs))
	}
	bufSize := max(ioBuf/bs, 1) * bs
	buf := make([]byte, bufSize)
	var runs []run
	add := func(block int64, n int64, kind ChunkType, fill uint32) {
		if k := len(runs); k > 0 {
			last := &runs[k-1]
			if last.kind == kind && last.block*bs+last.n == block*bs && last.n%bs == 0 && (kind != ChunkFill || last.fill == fill) {
				last.n += n
				return
			}
		}
		runs = append(runs, run{block: block, n: n, off: block * bs, fill: fill, kind: kind})
	}
	le := binary.LittleEndian
	for off := int64(0); off < size; off += bufSize {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(bufSize, size-off)
		if n%bs == 0 && image.KnownZero(src, off, n) { // a hole in a composed image: no need to read it
			if dontCare || holesDontCare {
				add(off/bs, n, ChunkDontCare, 0)
			} else {
				add(off/bs, n, ChunkFill, 0)
			}
			task.Add(n)
			continue
		}
		if err := readFull(src, buf[:n], off); err != nil {
			return nil, err
		}
		for b := int64(0); b < n; b += bs {
			blk := buf[b:min(b+bs, n)]
			block := (off + b) / bs
			if int64(len(blk)) < bs {
				add(block, int64(len(blk)), ChunkRaw, 0)
				break
			}
			if bytes.Equal(blk[4:], blk[:bs-4]) {
				v := le.Uint32(blk)
				if v == 0 && dontCare {
					add(block, bs, ChunkDontCare, 0)
				} else {
					add(block, bs, ChunkFill, v)
				}
				continue
			}
			add(block, bs, ChunkRaw, 0)
		}
		task.Add(n)
	}
	return runs, nil
}

func errTooManyBlocks(size, bs int64) error {
	return fmt.Errorf("sparse: image of %d bytes needs more than 2^32 blocks or chunks of %d bytes; use a larger block size", size, bs)
}

func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("sparse: reading source at offset %d: %w", off+int64(n), err)
}

// Write encodes src as a sparse image on w. It reads src twice (once to find fills and holes, once to
// copy the data), never holding more than a few MiB. Without DontCare the chunks are exactly those
// img2simg writes for the same input; a source whose size is not a multiple of the block size ends in
// a zero-padded raw block, so the expanded image is rounded up to whole blocks as with libsparse.
func Write(ctx context.Context, w io.Writer, src image.Image, opt WriteOptions) error {
	bs, err := checkBlockSize(opt.BlockSize)
	if err != nil {
		return err
	}
	rep := progress.OrDiscard(opt.Progress)
	task := rep.Task("sparse scan", src.Size())
	runs, err := scan(ctx, src, bs, opt.DontCare, opt.HolesDontCare, task)
	task.Done(err)
	if err != nil {
		return err
	}
	// The write bar counts the data copied, not the logical size: holes and fills cost nothing, and a
	// 9 GB super with 2 GB of data is a 2 GB job.
	task = rep.Task("sparse write", rawBytes(runs, bs, src.Size()))
	e := &encoder{src: src, srcSize: src.Size(), bs: bs, crc: opt.CRC, task: task}
	totalBlocks := (src.Size() + bs - 1) / bs
	err = e.encode(ctx, w, runs, totalBlocks)
	task.Done(err)
	return err
}

// encoder writes chunks whose raw bytes come from src.
type encoder struct {
	src     io.ReaderAt
	srcSize int64 // bytes available in src from offset 0 (raw runs never read past it)
	bs      int64
	crc     bool
	task    progress.Task
	sum     uint32
	buf     []byte
}

// chunkCount and encodedSize describe the file encode would write for runs, including the holes
// between runs and after the last one.
func chunkCount(runs []run, bs, totalBlocks int64, crc bool) int64 {
	var n, next int64
	for i := range runs {
		if runs[i].block > next {
			n++
		}
		n++
		next = runs[i].block + runs[i].blocks(bs)
	}
	if next < totalBlocks {
		n++
	}
	if crc {
		n++
	}
	return n
}

func encodedSize(runs []run, bs, totalBlocks int64, crc bool) int64 {
	size := int64(FileHeaderSize)
	var next int64
	for i := range runs {
		r := &runs[i]
		if r.block > next {
			size += ChunkHeaderSize
		}
		size += ChunkHeaderSize
		switch r.kind {
		case ChunkRaw:
			size += r.blocks(bs) * bs
		case ChunkFill:
			size += 4
		}
		next = r.block + r.blocks(bs)
	}
	if next < totalBlocks {
		size += ChunkHeaderSize
	}
	if crc {
		size += ChunkHeaderSize + 4
	}
	return size
}

func (e *encoder) encode(ctx context.Context, w io.Writer, runs []run, totalBlocks int64) error {
	chunks := chunkCount(runs, e.bs, totalBlocks, e.crc)
	if chunks > math.MaxUint32 || totalBlocks > math.MaxUint32 {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("sparse: %d chunks over %d blocks do not fit a sparse header", chunks, totalBlocks))
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var hb [FileHeaderSize]byte
	h := newHeader(uint32(e.bs), uint32(totalBlocks), uint32(chunks))
	h.marshal(hb[:])
	if _, err := bw.Write(hb[:]); err != nil {
		return err
	}
	var next int64
	for i := range runs {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := &runs[i]
		if r.block > next {
			if err := e.hole(bw, r.block-next); err != nil {
				return err
			}
		}
		if err := e.chunk(bw, r); err != nil {
			return err
		}
		next = r.block + r.blocks(e.bs)
	}
	if next < totalBlocks {
		if err := e.hole(bw, totalBlocks-next); err != nil {
			return err
		}
	}
	if e.crc {
		var cb [ChunkHeaderSize + 4]byte
		putChunkHeader(cb[:], ChunkCRC32, 0, ChunkHeaderSize+4)
		binary.LittleEndian.PutUint32(cb[ChunkHeaderSize:], e.sum)
		if _, err := bw.Write(cb[:]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func (e *encoder) hole(w io.Writer, blocks int64) error {
	var cb [ChunkHeaderSize]byte
	putChunkHeader(cb[:], ChunkDontCare, uint32(blocks), ChunkHeaderSize)
	if e.crc {
		e.sumPattern(blocks*e.bs, 0)
	}
	_, err := w.Write(cb[:])
	return err
}

func (e *encoder) sumPattern(n int64, v uint32) {
	if e.buf == nil {
		e.buf = make([]byte, ioBuf)
	}
	e.sum = crcFill(e.sum, v, n, e.buf)
}

func (e *encoder) chunk(w io.Writer, r *run) error {
	var cb [ChunkHeaderSize + 4]byte
	blocks := r.blocks(e.bs)
	switch r.kind {
	case ChunkDontCare:
		return e.hole(w, blocks)
	case ChunkFill:
		putChunkHeader(cb[:], ChunkFill, uint32(blocks), ChunkHeaderSize+4)
		binary.LittleEndian.PutUint32(cb[ChunkHeaderSize:], r.fill)
		if e.crc {
			e.sumPattern(blocks*e.bs, r.fill)
		}
		_, err := w.Write(cb[:])
		return err
	}
	padded := blocks * e.bs
	putChunkHeader(cb[:], ChunkRaw, uint32(blocks), uint32(ChunkHeaderSize+padded))
	if _, err := w.Write(cb[:ChunkHeaderSize]); err != nil {
		return err
	}
	if e.buf == nil {
		e.buf = make([]byte, ioBuf)
	}
	off, left := r.off, padded
	for left > 0 {
		k := min(left, int64(len(e.buf)))
		p := e.buf[:k]
		// Bytes past the end of the source are the zero padding of a partial last block.
		avail := max(0, min(k, e.srcSize-off))
		if err := readFull(e.src, p[:avail], off); err != nil {
			return err
		}
		clear(p[avail:])
		if e.crc {
			e.sum = crc32.Update(e.sum, crc32.IEEETable, p)
		}
		if _, err := w.Write(p); err != nil {
			return err
		}
		e.task.Add(avail)
		off += k
		left -= k
	}
	return nil
}

// rawBytes is how many source bytes the raw chunks of runs copy.
func rawBytes(runs []run, bs, size int64) int64 {
	var n int64
	for i := range runs {
		if runs[i].kind == ChunkRaw {
			n += max(0, min(runs[i].blocks(bs)*bs, size-runs[i].off))
		}
	}
	return n
}
