package blockota

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"strings"

	"context"

	"github.com/andybalholm/brotli"
	"github.com/ulikunitz/xz"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/progress"
)

// bitset marks blocks.
type bitset []uint64

func (b bitset) setRange(a, e int64) {
	for a < e {
		w, s := a>>6, uint(a&63)
		n := min(e-a, int64(64-s))
		mask := ^uint64(0)
		if n < 64 {
			mask = (1<<uint(n) - 1)
		}
		b[w] |= mask << s
		a += n
	}
}

// next returns the first index in [a, e) whose bit equals set, or e.
func (b bitset) next(a, e int64, set bool) int64 {
	for a < e {
		w := b[a>>6]
		if !set {
			w = ^w
		}
		w >>= uint(a & 63)
		if w != 0 {
			return min(e, a+int64(bits.TrailingZeros64(w)))
		}
		a = (a | 63) + 1
	}
	return e
}

// clearRuns calls fn for each maximal run of unmarked blocks in [a, e).
func (b bitset) clearRuns(a, e int64, fn func(s, e int64)) {
	for a < e {
		s := b.next(a, e, false)
		if s >= e {
			return
		}
		t := b.next(s, e, true)
		fn(s, t)
		a = t
	}
}

// Apply writes the raw image described by a full OTA's transfer list to dst, taking the blocks of
// `new` commands in order from newData. `zero` and `erase` blocks become zeros (only where no later
// command writes them). When dst is a new empty *os.File, zero blocks are left as holes and the file
// is truncated to the image size at the end. newData must hold exactly the blocks the list needs:
// a short stream, or bytes beyond them (a decompression bomb or the wrong file), is an error, and
// nothing past the first surplus byte is decompressed.
//
// The image size the list declares is bounded as image.SizeLimit describes, with the new data's size as
// the evidence; ApplyWith takes a better evidence (the compressed input) and a partition name.
func Apply(ctx context.Context, tl *TransferList, newData io.Reader, dst io.WriterAt, rep progress.Reporter) (err error) {
	return ApplyWith(ctx, tl, newData, dst, ApplyOptions{Progress: rep})
}

// ApplyOptions tunes ApplyWith.
type ApplyOptions struct {
	Progress progress.Reporter
	// Name is the partition, for the catalog size in Limit and for messages.
	Name string
	// Evidence is how many input bytes describe the image (transfer list plus compressed new data);
	// 0 means unknown, and the uncompressed new data the list needs stands in.
	Evidence int64
	// Limit bounds the image size; the zero value takes it from the context (image.WithSizeLimit).
	Limit image.SizeLimit
}

// CheckSize refuses an image size beyond the limit (see ApplyOptions) before anything is allocated.
func (tl *TransferList) CheckSize(ctx context.Context, opt ApplyOptions) error {
	l := opt.Limit
	if l.Max == 0 && l.Partitions == nil {
		l = image.SizeLimitFrom(ctx)
	}
	ev := opt.Evidence
	if ev <= 0 {
		ev = tl.NewDataSize()
	}
	name := opt.Name
	if name == "" {
		name = "image"
	}
	if err := l.Check(name, tl.ImageBlocks()*BlockSize, ev); err != nil {
		return &Error{Msg: "the transfer list names blocks up to " + fmt.Sprint(tl.ImageBlocks()), Err: err}
	}
	return nil
}

// ApplyWith is Apply with options.
func ApplyWith(ctx context.Context, tl *TransferList, newData io.Reader, dst io.WriterAt, opt ApplyOptions) (err error) {
	rep := opt.Progress
	if err := tl.CheckFull(); err != nil {
		return err
	}
	if err := tl.CheckSize(ctx, opt); err != nil {
		return err
	}
	nblocks := tl.ImageBlocks()
	// Walk the commands backwards to find, for each zero/erase, the blocks no later command overwrites.
	covered := make(bitset, (nblocks+63)/64)
	zeros := make([]RangeSet, len(tl.Commands))
	var zeroBlocks int64
	for i := len(tl.Commands) - 1; i >= 0; i-- {
		c := &tl.Commands[i]
		for j := len(c.Ranges) - 1; j >= 0; j-- {
			r := c.Ranges[j]
			if c.Op != "new" {
				covered.clearRuns(r.Start, r.End, func(s, e int64) {
					zeros[i] = append(zeros[i], Range{s, e})
					zeroBlocks += e - s
				})
			}
			covered.setRange(r.Start, r.End)
		}
	}
	var fresh *os.File
	if f, ok := dst.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() == 0 {
			fresh = f
		}
	}
	total := tl.NewDataSize()
	if fresh == nil {
		total += zeroBlocks * BlockSize
	}
	task := progress.OrDiscard(rep).Task("block ota", total)
	defer func() { task.Done(err) }()

	const bufSize = 1 << 20
	buf := make([]byte, bufSize)
	var zbuf []byte
	var consumed int64
	want := tl.NewDataSize()
	for i, c := range tl.Commands {
		if c.Op != "new" {
			if fresh != nil {
				continue
			}
			if zbuf == nil {
				zbuf = make([]byte, bufSize)
			}
			for _, r := range zeros[i] {
				for off, end := r.Start*BlockSize, r.End*BlockSize; off < end; {
					if err := ctx.Err(); err != nil {
						return err
					}
					k := min(end-off, bufSize)
					if _, err := dst.WriteAt(zbuf[:k], off); err != nil {
						return fmt.Errorf("blockota: writing zeros at %d: %w", off, err)
					}
					task.Add(k)
					off += k
				}
			}
			continue
		}
		for _, r := range c.Ranges {
			for off, end := r.Start*BlockSize, r.End*BlockSize; off < end; {
				if err := ctx.Err(); err != nil {
					return err
				}
				k := min(end-off, bufSize)
				n, err := io.ReadFull(newData, buf[:k])
				consumed += int64(n)
				if err != nil {
					if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
						return &Error{Line: c.Line, Msg: fmt.Sprintf("new data ends after %d of the %d bytes the transfer list needs (truncated or wrong file)", consumed, want)}
					}
					return &Error{Line: c.Line, Msg: fmt.Sprintf("reading new data at byte %d", consumed), Err: err}
				}
				if _, err := dst.WriteAt(buf[:k], off); err != nil {
					return fmt.Errorf("blockota: writing block %d: %w", off/BlockSize, err)
				}
				task.Add(k)
				off += k
			}
		}
	}
	var one [1]byte
	if n, err := io.ReadFull(newData, one[:]); n > 0 {
		return &Error{Msg: fmt.Sprintf("new data is longer than the %d bytes the transfer list needs (decompression bomb or wrong file)", want)}
	} else if err != nil && !errors.Is(err, io.EOF) {
		return &Error{Msg: "reading the end of the new data", Err: err}
	}
	if fresh != nil {
		if err := fresh.Truncate(nblocks * BlockSize); err != nil {
			return err
		}
	}
	return nil
}

// OpenNewData opens a new.dat file, decompressing by suffix: .br (brotli), .xz, or plain.
func OpenNewData(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	var r io.Reader = br
	switch {
	case strings.HasSuffix(path, ".br"):
		r = brotli.NewReader(br)
	case strings.HasSuffix(path, ".xz"):
		xr, err := xz.NewReader(br)
		if err != nil {
			f.Close()
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("blockota: %s: not an xz stream: %w", path, err))
		}
		r = xr
	}
	return struct {
		io.Reader
		io.Closer
	}{r, f}, nil
}
