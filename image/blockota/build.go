package blockota

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/andybalholm/brotli"
	"github.com/ulikunitz/xz"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/progress"
)

// BuildOptions control Build.
type BuildOptions struct {
	// Compression of the new data: "br" (default, what recoveries expect in new.dat.br), "xz" or "none".
	Compression string
	// BrotliQuality is 1..11; 0 means 6, the quality AOSP's ota_from_target_files uses.
	BrotliQuality int
	// Progress receives a "block ota build" task in source bytes; nil is fine.
	Progress progress.Reporter
}

// commandBlocks is the most blocks one new/zero command names, as AOSP splits them (smaller writes
// between progress updates and fsyncs on the device).
const commandBlocks = 1024

// Build writes a full block OTA of src: the new data (compressed as opt says) to newDat and a version 4
// transfer list to transferList. The list erases the whole partition, writes the non-zero blocks with
// `new` commands in block order and the zero blocks with `zero` commands. A source whose size is not a
// multiple of 4096 is padded with zeros to whole blocks.
func Build(ctx context.Context, src image.Image, newDat io.Writer, transferList io.Writer, opt BuildOptions) (err error) {
	var cw io.WriteCloser
	switch opt.Compression {
	case "", "br":
		q := opt.BrotliQuality
		if q == 0 {
			q = 6
		}
		if q < 1 || q > 11 {
			return failure.Kinded(failure.ErrUsage, fmt.Errorf("blockota: brotli quality %d not in 1..11", q))
		}
		cw = brotli.NewWriterLevel(newDat, q)
	case "xz":
		xw, err := xz.NewWriter(newDat)
		if err != nil {
			return err
		}
		cw = xw
	case "none":
		cw = nopCloser{newDat}
	default:
		return failure.Kinded(failure.ErrUsage, fmt.Errorf("blockota: unknown compression %q (br, xz or none)", opt.Compression))
	}
	size := src.Size()
	nblocks := (size + BlockSize - 1) / BlockSize
	if nblocks > MaxBlocks {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("blockota: image of %d bytes exceeds %d blocks", size, MaxBlocks))
	}
	task := progress.OrDiscard(opt.Progress).Task("block ota build", size)
	defer func() { task.Done(err) }()

	const bufSize = 1 << 20 // a multiple of BlockSize
	buf := make([]byte, bufSize)
	zero := make([]byte, BlockSize)
	var data, zeros RangeSet
	add := func(rs *RangeSet, a, b int64) {
		if n := len(*rs); n > 0 && (*rs)[n-1].End == a {
			(*rs)[n-1].End = b
			return
		}
		*rs = append(*rs, Range{a, b})
	}
	for off := int64(0); off < size; off += bufSize {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(bufSize, size-off)
		if m, err := src.ReadAt(buf[:n], off); int64(m) != n {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("blockota: reading source at %d: %w", off+int64(m), err)
		}
		padded := (n + BlockSize - 1) / BlockSize * BlockSize
		clear(buf[n:padded])
		// Write each stretch of non-zero blocks to the compressor in one call.
		runStart := int64(-1)
		for b := int64(0); b <= padded; b += BlockSize {
			isData := b < padded && !bytes.Equal(buf[b:b+BlockSize], zero)
			if isData && runStart < 0 {
				runStart = b
			}
			if !isData && runStart >= 0 {
				if _, err := cw.Write(buf[runStart:b]); err != nil {
					return fmt.Errorf("blockota: writing new data: %w", err)
				}
				add(&data, (off+runStart)/BlockSize, (off+b)/BlockSize)
				runStart = -1
			}
			if !isData && b < padded {
				add(&zeros, (off+b)/BlockSize, (off+b)/BlockSize+1)
			}
		}
		task.Add(n)
	}
	if err := cw.Close(); err != nil {
		return fmt.Errorf("blockota: finishing new data: %w", err)
	}
	tl := &TransferList{Version: 4, TotalBlocks: data.Blocks() + zeros.Blocks()}
	if nblocks > 0 {
		tl.Commands = append(tl.Commands, Command{Op: "erase", Ranges: RangeSet{{0, nblocks}}})
	}
	tl.Commands = append(tl.Commands, splitCommands("new", data)...)
	tl.Commands = append(tl.Commands, splitCommands("zero", zeros)...)
	if _, err := tl.WriteTo(transferList); err != nil {
		return fmt.Errorf("blockota: writing transfer list: %w", err)
	}
	return nil
}

// splitCommands cuts rs, in order, into commands of at most commandBlocks blocks each.
func splitCommands(op string, rs RangeSet) []Command {
	var out []Command
	var cur RangeSet
	var n int64
	for _, r := range rs {
		for r.Start < r.End {
			k := min(r.End-r.Start, commandBlocks-n)
			cur = append(cur, Range{r.Start, r.Start + k})
			n += k
			r.Start += k
			if n == commandBlocks {
				out = append(out, Command{Op: op, Ranges: cur})
				cur, n = nil, 0
			}
		}
	}
	if n > 0 {
		out = append(out, Command{Op: op, Ranges: cur})
	}
	return out
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
