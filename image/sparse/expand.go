package sparse

import (
	"context"
	"fmt"
	"io"

	"github.com/romforge/romforge/progress"
)

// Expand writes the expanded image to dst, reading raw chunks from the sparse file. DONT_CARE regions
// are never written: they keep what dst holds, which is what a device does with each sparse piece of a
// split image (and a fresh file truncated to Size reads them as zeros). When dstZeroed is true dst
// already reads as zeros, so zero fills are not written either and stay holes on disk. Progress is
// reported as "sparse expand" in expanded bytes.
func (m *Image) Expand(ctx context.Context, dst io.WriterAt, dstZeroed bool, rep progress.Reporter) (err error) {
	task := progress.OrDiscard(rep).Task("sparse expand", m.Size())
	defer func() { task.Done(err) }()
	buf := make([]byte, ioBuf)
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
			fillPattern(buf, s.fill, 0) // holes carry fill 0; len(buf) is a multiple of 4, so the phase holds
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
