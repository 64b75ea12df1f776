package sparse

import (
	"context"
	"fmt"
	"io"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/progress"
)

// splitOverhead is what libsparse reserves in every piece: the file header, a leading and a trailing
// DONT_CARE chunk header, and a CRC32 value.
const splitOverhead = FileHeaderSize + 2*ChunkHeaderSize + 4

// Piece is one sparse image produced by Split. It covers the whole length of the original image; the
// blocks other pieces carry are DONT_CARE in it.
type Piece struct {
	enc         encoder
	runs        []run
	totalBlocks int64
	size        int64
}

// Size is the exact number of bytes WriteTo writes.
func (p *Piece) Size() int64 { return p.size }

// Blocks returns the first block and the number of blocks whose contents the piece carries (from its
// first to its last chunk, holes between them included).
func (p *Piece) Blocks() (first, count int64) {
	if len(p.runs) == 0 {
		return 0, 0
	}
	last := &p.runs[len(p.runs)-1]
	return p.runs[0].block, last.block + last.blocks(p.enc.bs) - p.runs[0].block
}

// WriteTo streams the piece to w, reading its data from the source given to Split.
func (p *Piece) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	enc := p.enc
	enc.task = progress.Discard.Task("", 0)
	err := enc.encode(context.Background(), cw, p.runs, p.totalBlocks)
	if err == nil && cw.n != p.size {
		err = fmt.Errorf("sparse: piece wrote %d bytes, expected %d", cw.n, p.size)
	}
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Split cuts src into sparse images of at most max bytes each which, expanded one over the other (as
// `simg2img p0 p1 …` or a device flashing them in turn does), rebuild src. A sparse *Image keeps its
// chunks; any other image is first resparsed as libsparse reads a raw file (4096-byte blocks, fills,
// no holes). The cut points follow libsparse's sparse_file_resparse, so the pieces match what
// `simg2simg` and the fastboot client produce for the same input and limit.
func Split(src image.Image, max int64) ([]Piece, error) {
	return SplitContext(context.Background(), src, max, nil)
}

// SplitContext is Split with cancellation and progress for the scan of a raw source.
func SplitContext(ctx context.Context, src image.Image, max int64, rep progress.Reporter) ([]Piece, error) {
	var runs []run
	var bs, total int64
	var data io.ReaderAt
	var dataSize int64
	if m, ok := src.(*Image); ok {
		bs, total = int64(m.hdr.BlockSize), int64(m.hdr.TotalBlocks)
		data, dataSize = m.ra, m.size
		var err error
		runs, err = m.runs()
		if err != nil {
			return nil, err
		}
	} else {
		bs = DefaultBlockSize
		total = (src.Size() + bs - 1) / bs
		data, dataSize = src, src.Size()
		task := progress.OrDiscard(rep).Task("sparse scan", src.Size())
		var err error
		runs, err = scan(ctx, src, bs, false, false, task)
		task.Done(err)
		if err != nil {
			return nil, err
		}
	}
	if min := splitOverhead + ChunkHeaderSize + bs; max < min {
		return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("sparse: piece size %d is too small for blocks of %d bytes (need at least %d)", max, bs, min))
	}
	groups, err := resparse(runs, bs, max)
	if err != nil {
		return nil, err
	}
	pieces := make([]Piece, len(groups))
	for i, g := range groups {
		pieces[i] = Piece{
			enc:         encoder{src: data, srcSize: dataSize, bs: bs},
			runs:        g,
			totalBlocks: total,
			size:        encodedSize(g, bs, total, false),
		}
		if pieces[i].size > max {
			return nil, fmt.Errorf("sparse: internal error: piece %d is %d bytes, over the limit %d", i, pieces[i].size, max)
		}
	}
	return pieces, nil
}

// runs lists the data-bearing chunks of the file as runs, merging equal neighbouring fills.
func (m *Image) runs() ([]run, error) {
	var out []run
	bs := int64(m.hdr.BlockSize)
	_, err := parse(m.ra, m.size, func(c *Chunk) error {
		if c.Blocks == 0 || (c.Type != ChunkRaw && c.Type != ChunkFill) {
			return nil
		}
		r := run{block: int64(c.Block), n: int64(c.Blocks) * bs, kind: c.Type, fill: c.Value, off: c.DataOffset}
		if k := len(out); k > 0 {
			last := &out[k-1]
			if last.kind == ChunkFill && r.kind == ChunkFill && last.fill == r.fill && last.block+last.n/bs == r.block {
				last.n += r.n
				return nil
			}
		}
		out = append(out, r)
		return nil
	}, nil)
	return out, err
}

// resparse groups runs into pieces with libsparse's rule: fill a piece in order until the next chunk
// does not fit; then split that chunk at the remaining room if this is the piece's first chunk or the
// room left is more than an eighth of the piece, else start the next piece with it.
func resparse(runs []run, bs, max int64) ([][]run, error) {
	budget := max - splitOverhead
	var out [][]run
	for len(runs) > 0 {
		var piece []run
		var used, next int64
		var rest []run
		i := 0
		for ; i < len(runs); i++ {
			r := runs[i]
			var count int64
			if r.block > next {
				count += ChunkHeaderSize
			}
			next = r.block + r.blocks(bs)
			count += ChunkHeaderSize
			if r.kind == ChunkRaw {
				count += r.blocks(bs) * bs
			} else {
				count += 4
			}
			if used+count <= budget {
				used += count
				piece = append(piece, r)
				continue
			}
			used += ChunkHeaderSize
			room := budget - used
			if len(piece) > 0 && room <= budget/8 {
				rest = runs[i:]
				break
			}
			room -= room % bs
			if r.n <= room {
				piece = append(piece, r)
				rest = runs[i+1:]
				break
			}
			if room <= 0 {
				return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("sparse: piece size %d leaves no room for a block of %d bytes", max, bs))
			}
			head, tail := r, r
			head.n = room
			tail.block += room / bs
			tail.n -= room
			if r.kind == ChunkRaw {
				tail.off += room
			}
			piece = append(piece, head)
			runs[i] = tail // runs is ours (from scan or runs()); pieces hold copies
			rest = runs[i:]
			break
		}
		if i == len(runs) {
			rest = nil
		}
		out = append(out, piece)
		runs = rest
	}
	return out, nil
}
