package sparse

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"math"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/progress"
)

// File is what the one-pass writer needs: sequential writes plus patching of headers already written.
type File interface {
	io.Writer
	io.WriterAt
}

// patchWriter buffers sequential output and lets earlier bytes be patched, in the buffer while they are
// still there, else in the file.
type patchWriter struct {
	f       File
	buf     []byte
	flushed int64 // bytes already handed to f
}

func (w *patchWriter) pos() int64 { return w.flushed + int64(len(w.buf)) }

func (w *patchWriter) write(p []byte) error {
	if len(w.buf)+len(p) > cap(w.buf) {
		if err := w.flush(); err != nil {
			return err
		}
		if len(p) >= cap(w.buf) {
			n, err := w.f.Write(p)
			w.flushed += int64(n)
			return err
		}
	}
	w.buf = append(w.buf, p...)
	return nil
}

func (w *patchWriter) flush() error {
	n, err := w.f.Write(w.buf)
	w.flushed += int64(n)
	w.buf = w.buf[:0]
	return err
}

func (w *patchWriter) patch(p []byte, off int64) error {
	if off >= w.flushed {
		copy(w.buf[off-w.flushed:], p)
		return nil
	}
	_, err := w.f.WriteAt(p, off)
	return err
}

// WriteFile is Write for an output that can be patched (an *os.File): it reads the source only once,
// writing each chunk as its blocks are classified and filling in chunk and file headers afterwards.
// The bytes are identical to Write's.
func WriteFile(ctx context.Context, f File, src image.Image, opt WriteOptions) (err error) {
	bs, err := checkBlockSize(opt.BlockSize)
	if err != nil {
		return err
	}
	size := src.Size()
	totalBlocks := (size + bs - 1) / bs
	if totalBlocks > math.MaxUint32 {
		return failure.Kinded(failure.ErrInvalid, errTooManyBlocks(size, bs))
	}
	task := progress.OrDiscard(opt.Progress).Task("sparse write", size)
	defer func() { task.Done(err) }()
	w := &patchWriter{f: f, buf: make([]byte, 0, 1<<20)}
	var hb [FileHeaderSize]byte
	if err := w.write(hb[:]); err != nil { // placeholder, written for real at the end
		return err
	}
	var (
		chunks  int64
		cur     ChunkType // kind of the open chunk, 0 when none
		curFill uint32
		curHdr  int64 // where the open chunk's header is
		curN    int64 // blocks in the open chunk
		sum     uint32
		ch      [ChunkHeaderSize + 4]byte
	)
	closeChunk := func() error {
		if cur == 0 {
			return nil
		}
		total := uint32(ChunkHeaderSize)
		switch cur {
		case ChunkRaw:
			total += uint32(curN * bs)
		case ChunkFill:
			total += 4
		}
		putChunkHeader(ch[:], cur, uint32(curN), total)
		chunks++
		cur = 0
		return w.patch(ch[:ChunkHeaderSize], curHdr)
	}
	open := func(kind ChunkType, fill uint32) error {
		if err := closeChunk(); err != nil {
			return err
		}
		cur, curFill, curHdr, curN = kind, fill, w.pos(), 0
		if err := w.write(ch[:ChunkHeaderSize]); err != nil {
			return err
		}
		if kind == ChunkFill {
			binary.LittleEndian.PutUint32(ch[:4], fill)
			return w.write(ch[:4])
		}
		return nil
	}
	bufSize := max(ioBuf/bs, 1) * bs
	buf := make([]byte, bufSize)
	le := binary.LittleEndian
	for off := int64(0); off < size; off += bufSize {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(bufSize, size-off)
		if err := readFull(src, buf[:n], off); err != nil {
			return err
		}
		padded := (n + bs - 1) / bs * bs
		partial := padded != n
		clear(buf[n:padded])
		if opt.CRC {
			sum = crc32.Update(sum, crc32.IEEETable, buf[:padded])
		}
		rawStart := int64(-1) // start in buf of raw bytes not yet written
		for b := int64(0); b < padded; b += bs {
			blk := buf[b : b+bs]
			kind, v := ChunkRaw, uint32(0)
			if !(partial && b+bs == padded) && bytes.Equal(blk[4:], blk[:bs-4]) {
				kind, v = ChunkFill, le.Uint32(blk)
				if v == 0 && opt.DontCare {
					kind = ChunkDontCare
				}
			}
			if kind != cur || (kind == ChunkFill && v != curFill) {
				if rawStart >= 0 {
					if err := w.write(buf[rawStart:b]); err != nil {
						return err
					}
					rawStart = -1
				}
				if err := open(kind, v); err != nil {
					return err
				}
			}
			if kind == ChunkRaw && rawStart < 0 {
				rawStart = b
			}
			curN++
		}
		if rawStart >= 0 {
			if err := w.write(buf[rawStart:padded]); err != nil {
				return err
			}
		}
		task.Add(n)
	}
	if err := closeChunk(); err != nil {
		return err
	}
	if opt.CRC {
		putChunkHeader(ch[:], ChunkCRC32, 0, ChunkHeaderSize+4)
		le.PutUint32(ch[ChunkHeaderSize:], sum)
		if err := w.write(ch[:]); err != nil {
			return err
		}
		chunks++
	}
	if chunks > math.MaxUint32 {
		return failure.Kinded(failure.ErrInvalid, errTooManyBlocks(size, bs))
	}
	h := newHeader(uint32(bs), uint32(totalBlocks), uint32(chunks))
	h.marshal(hb[:])
	if err := w.patch(hb[:], 0); err != nil {
		return err
	}
	return w.flush()
}
