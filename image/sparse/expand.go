package sparse

import (
	"context"
	"fmt"
	"hash/crc32"
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
//
// CRC32 chunks are checked on the way (fills and holes arithmetically, raw data as it passes), so a
// corrupt file fails with an invalid-input error; dst then holds a partial image the caller discards.
func (m *Image) Expand(ctx context.Context, dst io.WriterAt, dstZeroed bool, rep progress.Reporter) (err error) {
	task := progress.OrDiscard(rep).Task("sparse expand", m.Size())
	defer func() { task.Done(err) }()
	cc := crcChecker{m: m, on: len(m.crcs) > 0}
	if m.counts.CRC32 > len(m.crcs) { // too many to follow inline
		if err := m.Verify(ctx); err != nil {
			return err
		}
		cc.on = false
	}
	bp := expandBufs.Get().(*[]byte)
	defer expandBufs.Put(bp)
	buf := *bp
	for i := range m.spans {
		if err := ctx.Err(); err != nil {
			return err
		}
		s := &m.spans[i]
		off, end := s.start, m.spanEnd(i)
		if s.kind != ChunkRaw {
			if err := cc.pattern(ctx, off, end, s.fill); err != nil {
				return err
			}
		}
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
				k = cc.limit(off, k)
				p = buf[:k]
				if err := readFull(m.ra, p, s.src+(off-s.start)); err != nil {
					return fmt.Errorf("sparse: raw chunk data: %w", err)
				}
				if err := cc.data(ctx, off, p); err != nil {
					return err
				}
			}
			if _, err := dst.WriteAt(p, off); err != nil {
				return err
			}
			task.Add(k)
			off += k
		}
	}
	return cc.check(ctx, m.Size())
}

// crcChecker follows the running CRC of the expanded image through Expand and compares it at each
// CRC32 chunk.
type crcChecker struct {
	m    *Image
	on   bool
	crc  uint32
	next int // first unchecked point
}

// check compares every point at offset pos (the running CRC covers exactly [0, pos)).
func (c *crcChecker) check(ctx context.Context, pos int64) error {
	for c.on && c.next < len(c.m.crcs) && c.m.crcs[c.next].at <= pos {
		p := c.m.crcs[c.next]
		if p.value != c.crc {
			// Files libsparse's writer made sum fills and holes differently; Verify knows both ways and
			// decides for the whole file.
			if err := c.m.Verify(ctx); err != nil {
				return err
			}
			c.on = false
			return nil
		}
		c.next++
	}
	return nil
}

// limit shortens a raw read at off of k bytes so that it ends at the next point.
func (c *crcChecker) limit(off, k int64) int64 {
	if c.on && c.next < len(c.m.crcs) {
		if at := c.m.crcs[c.next].at; at > off && at < off+k {
			return at - off
		}
	}
	return k
}

// data adds raw bytes p at offset off.
func (c *crcChecker) data(ctx context.Context, off int64, p []byte) error {
	if !c.on {
		return nil
	}
	if err := c.check(ctx, off); err != nil {
		return err
	}
	c.crc = crc32.Update(c.crc, crc32.IEEETable, p)
	return c.check(ctx, off+int64(len(p)))
}

// pattern adds [off, end) filled with the word fill (0 for holes), piece by piece between points.
func (c *crcChecker) pattern(ctx context.Context, off, end int64, fill uint32) error {
	for c.on && off < end {
		if err := c.check(ctx, off); err != nil {
			return err
		}
		stop := end
		if c.next < len(c.m.crcs) && c.m.crcs[c.next].at > off {
			stop = min(stop, c.m.crcs[c.next].at)
		}
		c.crc = crcFill(c.crc, fill, stop-off, nil)
		off = stop
	}
	return c.check(ctx, end)
}
