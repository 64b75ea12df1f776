package sparse

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/romforge/romforge/progress"
)

// expandBufs recycles Expand's buffer: a device flashing a split image expands every piece.
var expandBufs = sync.Pool{New: func() any { b := make([]byte, ioBuf); return &b }}

// Expand writes the expanded image to dst, reading raw chunks from the sparse file. DONT_CARE regions
// are never written: they keep what dst holds, which is what a device does with each sparse piece of a
// split image (and a fresh file truncated to Size reads them as zeros). When dstZeroed is true dst
// already reads as zeros, so zero fills are not written either and stay holes on disk. Progress is
// reported as "sparse expand" in expanded bytes.
func (m *Image) Expand(ctx context.Context, dst io.WriterAt, dstZeroed bool, rep progress.Reporter) (err error) {
	task := progress.OrDiscard(rep).Task("sparse expand", m.Size())
	defer func() { task.Done(err) }()
	bp := expandBufs.Get().(*[]byte)
	defer expandBufs.Put(bp)
	buf := *bp
	for i := range m.spans {
		if err := ctx.Err(); err != nil {
			return err
		}
		s := &m.spans[i]
		off, end := s.start, m.spanEnd(i)
		zero := s.kind == ChunkFill && s.fill == 0
		if s.kind == ChunkDontCare || zero && dstZeroed {
			task.Add(end - off)
			continue
		}
		if s.kind != ChunkRaw {
			// Only as much as the span needs (a short fill must not cost a whole buffer); the length is a
			// multiple of 4 unless the span ends the image, so the pattern's phase holds for every write.
			fillPattern(buf[:min(int64(len(buf)), end-off)], s.fill, 0) // holes carry fill 0
		}
		for off < end {
			k := min(int64(len(buf)), end-off)
			p := buf[:k]
			if s.kind == ChunkRaw {
				if err := readFull(m.ra, p, s.src+(off-s.start)); err != nil {
					return fmt.Errorf("sparse: raw chunk data: %w", err)
				}
			}
			if _, err := dst.WriteAt(p, off); err != nil {
				return err
			}
			task.Add(k)
			off += k
		}
	}
	return nil
}
