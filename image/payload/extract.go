package payload

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/romforge/romforge/compress/xzfilter"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/payload/bspatch"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
	"github.com/romforge/romforge/progress"
)

var (
	// ErrHashMismatch reports data whose SHA-256 differs from the manifest's.
	ErrHashMismatch = failure.Kinded(failure.ErrInvalid, errors.New("hash mismatch"))
	// ErrUnsupported reports an operation type this package cannot apply (PUFFDIFF, ZUCCHINI, LZ4DIFF, …).
	ErrUnsupported = failure.Kinded(failure.ErrInvalid, errors.New("unsupported operation"))
	// ErrNeedSource reports a delta operation without the old partition image it applies to.
	ErrNeedSource = failure.Kinded(failure.ErrUsage, errors.New("delta operation needs the old partition image (pass the source images, e.g. --old DIR)"))
)

// OpError is a failure of one operation.
type OpError struct {
	Partition string
	Index     int
	Type      OpType
	Err       error
}

func (e *OpError) Error() string {
	return fmt.Sprintf("payload: partition %q operation %d (%s): %v", e.Partition, e.Index, e.Type, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }

func invalid(format string, args ...any) error {
	return failure.Kinded(failure.ErrInvalid, fmt.Errorf(format, args...))
}

// ExtractOptions tunes Extract.
type ExtractOptions struct {
	// Workers is how many operations run at once (default GOMAXPROCS).
	Workers int
	// Source is the old partition image, for delta operations.
	Source image.Image
	// Progress receives one task per partition, counted in bytes of output.
	Progress progress.Reporter
	// SkipVerify skips the data, source and partition hash checks (they are on by default).
	SkipVerify bool
	// DstZeroed says dst already reads as zeros (a new, truncated file), so ZERO and DISCARD operations and
	// block padding need not be written.
	DstZeroed bool
	// MaxInFlight caps the operation data held in memory at once, in bytes (default 64 MiB). Operations
	// larger than MaxBuffered are streamed from the payload twice (hash, then decode) instead of buffered.
	MaxInFlight int64
	// Limit bounds the partition size the manifest declares (see image.SizeLimit; the evidence is the
	// payload's size). The zero value takes the limit from the context (image.WithSizeLimit), else the
	// ratio rule.
	Limit image.SizeLimit
}

// limit resolves the size limit of opt against the one carried by ctx.
func (o *ExtractOptions) limit(ctx context.Context) image.SizeLimit {
	if o.Limit.Max == 0 && o.Limit.Partitions == nil {
		return image.SizeLimitFrom(ctx)
	}
	return o.Limit
}

// checkSize refuses a declared partition size beyond the limit before anything is written.
func (p *Payload) checkSize(pu *PartitionUpdate, l image.SizeLimit) error {
	if pu.NewInfo.Size > image.HardLimit {
		return formatErr(-1, "partition %q declares %d bytes, beyond any real partition (%d)", pu.Name, pu.NewInfo.Size, int64(image.HardLimit))
	}
	if err := l.Check(pu.Name, int64(pu.NewInfo.Size), p.size); err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	return nil
}

// MaxBuffered is the largest operation blob read into memory; larger ones are read twice.
const MaxBuffered = 16 << 20

// maxPatch bounds a bsdiff patch, which must be held in memory.
const maxPatch = 512 << 20

func (o *ExtractOptions) workers() int {
	if o.Workers > 0 {
		return min(o.Workers, 256)
	}
	return runtime.GOMAXPROCS(0)
}

// plan is a validated partition ready to extract.
type plan struct {
	p        *Payload
	pu       *PartitionUpdate
	bs       int64
	size     int64 // new partition size
	dataSize int64 // bytes of blob area
	src      image.Image
}

func needsData(t OpType) bool {
	switch t {
	case OpReplace, OpReplaceBZ, OpReplaceXZ, OpZSTD, OpSourceBSDiff, OpBrotliBSDiff:
		return true
	}
	return false
}

func isSource(t OpType) bool { return t == OpSourceCopy || t == OpSourceBSDiff || t == OpBrotliBSDiff }

func extentBytes(es []Extent, bs int64) int64 {
	var n int64
	for _, e := range es {
		n += int64(e.NumBlocks) * bs
	}
	return n
}

// checkExtents validates extents against a partition of blocks blocks.
func checkExtents(es []Extent, blocks uint64, what string) error {
	if len(es) == 0 {
		return invalid("no %s extents", what)
	}
	for _, e := range es {
		if e.NumBlocks == 0 || e.StartBlock >= blocks || e.NumBlocks > blocks-e.StartBlock {
			return invalid("%s extent (%d, %d) outside the %d-block partition", what, e.StartBlock, e.NumBlocks, blocks)
		}
	}
	return nil
}

// newPlan validates every operation of a partition before anything is written.
func (p *Payload) newPlan(ctx context.Context, name string, opt *ExtractOptions) (*plan, error) {
	pu, err := p.partition(name)
	if err != nil {
		return nil, err
	}
	bs := int64(p.Manifest.BlockSize)
	if err := p.checkSize(pu, opt.limit(ctx)); err != nil {
		return nil, err
	}
	pl := &plan{p: p, pu: pu, bs: bs, size: int64(pu.NewInfo.Size), dataSize: p.size - p.DataOffset, src: opt.Source}
	if pl.dataSize < 0 {
		pl.dataSize = 0
	}
	newBlocks := uint64((pl.size + bs - 1) / bs)
	var srcBlocks uint64
	if pl.src != nil {
		srcBlocks = uint64((pl.src.Size() + bs - 1) / bs)
	}
	type span struct {
		start, end uint64
		op         int
	}
	var spans []span
	for i := range pu.Operations {
		op := &pu.Operations[i]
		fail := func(err error) error { return &OpError{Partition: name, Index: i, Type: op.Type, Err: err} }
		switch op.Type {
		case OpReplace, OpReplaceBZ, OpReplaceXZ, OpZSTD, OpZero, OpDiscard:
		case OpSourceCopy, OpSourceBSDiff, OpBrotliBSDiff:
			if pl.src == nil {
				return nil, fail(ErrNeedSource)
			}
			if err := checkExtents(op.SrcExtents, srcBlocks, "source"); err != nil {
				return nil, fail(err)
			}
		default:
			return nil, fail(fmt.Errorf("%w %s (romforge applies REPLACE, REPLACE_BZ, REPLACE_XZ, ZSTD, ZERO, DISCARD, SOURCE_COPY, SOURCE_BSDIFF, BROTLI_BSDIFF)", ErrUnsupported, op.Type))
		}
		if err := checkExtents(op.DstExtents, newBlocks, "destination"); err != nil {
			return nil, fail(err)
		}
		dst := extentBytes(op.DstExtents, bs)
		if needsData(op.Type) {
			if !op.HasData || op.DataLength == 0 {
				return nil, fail(invalid("no data blob"))
			}
			if safeio.CheckRange(int64(op.DataOffset), int64(op.DataLength), pl.dataSize) != nil || int64(op.DataOffset) < 0 {
				return nil, fail(invalid("data blob [%d, +%d) lies beyond the payload's %d data bytes (truncated payload?)", op.DataOffset, op.DataLength, pl.dataSize))
			}
			if op.Type == OpReplace && (int64(op.DataLength) > dst || int64(op.DataLength) <= dst-bs) {
				return nil, fail(invalid("REPLACE data of %d bytes does not fill its %d destination bytes", op.DataLength, dst))
			}
			if (op.Type == OpSourceBSDiff || op.Type == OpBrotliBSDiff) && op.DataLength > maxPatch {
				return nil, fail(invalid("patch of %d bytes is too large", op.DataLength))
			}
		}
		if op.Type == OpSourceCopy && extentBytes(op.SrcExtents, bs) != dst {
			return nil, fail(invalid("SOURCE_COPY source and destination sizes differ"))
		}
		for _, e := range op.DstExtents {
			spans = append(spans, span{e.StartBlock, e.StartBlock + e.NumBlocks, i})
		}
	}
	sort.Slice(spans, func(a, b int) bool { return spans[a].start < spans[b].start })
	for k := 1; k < len(spans); k++ {
		if spans[k].start < spans[k-1].end {
			i := max(spans[k].op, spans[k-1].op)
			return nil, &OpError{Partition: name, Index: i, Type: pu.Operations[i].Type,
				Err: invalid("destination blocks overlap those of operation %d", min(spans[k].op, spans[k-1].op))}
		}
	}
	return pl, nil
}

// Extract writes partition name to dst. Operations run in parallel, each writing its own blocks with
// WriteAt. Unless SkipVerify is set, dst must also be an io.ReaderAt (an *os.File is) so that the finished
// partition can be checked against the manifest's hash.
func (p *Payload) Extract(ctx context.Context, name string, dst io.WriterAt, opt ExtractOptions) error {
	pl, err := p.newPlan(ctx, name, &opt)
	if err != nil {
		return err
	}
	verifyDst, canRead := dst.(io.ReaderAt)
	if !opt.SkipVerify && !canRead {
		return failure.Kinded(failure.ErrUsage, errors.New("payload: verifying needs a readable destination (io.ReaderAt, e.g. an *os.File), or set SkipVerify"))
	}
	task := progress.OrDiscard(opt.Progress).Task(name, pl.size)
	err = pl.run(ctx, dst, opt, task)
	if err == nil && !opt.SkipVerify {
		err = pl.verify(ctx, verifyDst)
	}
	task.Done(err)
	return err
}

func (pl *plan) verify(ctx context.Context, r io.ReaderAt) error {
	h := sha256.New()
	// Reading back a whole partition takes long: Ctrl-C must stop it (issue 19).
	if _, err := safeio.CopyContext(ctx, h, io.NewSectionReader(r, 0, pl.size)); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("payload: reading back %q: %w", pl.pu.Name, err)
	}
	if sum := h.Sum(nil); !bytes.Equal(sum, pl.pu.NewInfo.Hash) {
		return fmt.Errorf("payload: partition %q: SHA-256 %x, manifest says %x: %w", pl.pu.Name, sum, pl.pu.NewInfo.Hash, ErrHashMismatch)
	}
	return nil
}

// verifySource checks the old image against old_partition_info.
func (pl *plan) verifySource(ctx context.Context) error {
	oi := pl.pu.OldInfo
	if pl.src == nil || oi == nil || len(oi.Hash) == 0 {
		return nil
	}
	if uint64(pl.src.Size()) < oi.Size {
		return invalid("payload: partition %q: old image has %d bytes, the payload expects %d", pl.pu.Name, pl.src.Size(), oi.Size)
	}
	h := sha256.New()
	if _, err := safeio.CopyContext(ctx, h, io.NewSectionReader(pl.src, 0, int64(oi.Size))); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("payload: reading old %q: %w", pl.pu.Name, err)
	}
	if sum := h.Sum(nil); !bytes.Equal(sum, oi.Hash) {
		return fmt.Errorf("payload: partition %q: old image SHA-256 %x, payload expects %x (wrong source build?): %w", pl.pu.Name, sum, oi.Hash, ErrHashMismatch)
	}
	return nil
}

// tokens is a counting semaphore in MiB units, taken only by the single dispatcher (in operation order, so
// nothing starves) and given back by workers.
type tokens chan struct{}

func mib(n uint64) int { return int((n + 1<<20 - 1) >> 20) }

func (pl *plan) run(ctx context.Context, dst io.WriterAt, opt ExtractOptions, task progress.Task) error {
	if !opt.SkipVerify {
		if err := pl.verifySource(ctx); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	inflight := opt.MaxInFlight
	if inflight <= 0 {
		inflight = 64 << 20
	}
	capTok := max(mib(uint64(inflight)), 1)
	tok := make(tokens, capTok)
	for range capTok {
		tok <- struct{}{}
	}
	type job struct{ i, n int }
	jobs := make(chan job)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	setErr := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	for range opt.workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newWorker(pl, dst, opt)
			defer w.close()
			for j := range jobs {
				if ctx.Err() == nil {
					if err := w.apply(ctx, j.i); err != nil {
						setErr(err)
					} else {
						task.Add(extentBytes(pl.pu.Operations[j.i].DstExtents, pl.bs))
					}
				}
				for range j.n {
					tok <- struct{}{}
				}
			}
		}()
	}
dispatch:
	for i := range pl.pu.Operations {
		op := &pl.pu.Operations[i]
		n := 0
		if needsData(op.Type) && (op.DataLength <= MaxBuffered || op.Type == OpSourceBSDiff || op.Type == OpBrotliBSDiff) {
			n = min(mib(op.DataLength), capTok)
		}
		for k := 0; k < n; k++ {
			select {
			case <-tok:
			case <-ctx.Done():
				for ; k > 0; k-- {
					tok <- struct{}{}
				}
				break dispatch
			}
		}
		select {
		case jobs <- job{i, n}:
		case <-ctx.Done():
			for ; n > 0; n-- {
				tok <- struct{}{}
			}
			break dispatch
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// worker holds the per-goroutine state: buffers and a reusable zstd decoder.
type worker struct {
	pl   *plan
	dst  io.WriterAt
	opt  ExtractOptions
	buf  []byte // copy buffer
	blob []byte // reused blob buffer
	zstd *zstd.Decoder
}

var zeros = make([]byte, 256<<10)

func newWorker(pl *plan, dst io.WriterAt, opt ExtractOptions) *worker {
	return &worker{pl: pl, dst: dst, opt: opt, buf: make([]byte, 256<<10)}
}

func (w *worker) close() {
	if w.zstd != nil {
		w.zstd.Close()
	}
}

func (w *worker) apply(ctx context.Context, i int) error {
	op := &w.pl.pu.Operations[i]
	err := w.applyOp(ctx, op)
	if err != nil && ctx.Err() != nil && !errors.Is(err, failure.ErrInvalid) {
		return ctx.Err()
	}
	if err != nil {
		return &OpError{Partition: w.pl.pu.Name, Index: i, Type: op.Type, Err: err}
	}
	return nil
}

var errTooLong = invalid("decodes to more bytes than its destination extents hold")

// extentWriter writes a stream of bytes across destination extents, dropping bytes past the partition end
// and refusing anything beyond the extents (the decompression-bomb guard).
type extentWriter struct {
	dst   io.WriterAt
	ext   []Extent
	bs    int64
	limit int64
	i     int
	off   int64 // within ext[i]
	n     int64
	total int64
}

func (w *extentWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > w.total-w.n {
		return 0, errTooLong
	}
	done := 0
	for len(p) > 0 {
		e := w.ext[w.i]
		elen := int64(e.NumBlocks) * w.bs
		k := min(int64(len(p)), elen-w.off)
		pos := int64(e.StartBlock)*w.bs + w.off
		if pos < w.limit {
			m := min(k, w.limit-pos)
			if _, err := w.dst.WriteAt(p[:m], pos); err != nil {
				return done, err
			}
		}
		p = p[k:]
		done += int(k)
		w.n += k
		w.off += k
		if w.off == elen {
			w.i++
			w.off = 0
		}
	}
	return done, nil
}

func (w *worker) newExtentWriter(es []Extent) *extentWriter {
	return &extentWriter{dst: w.dst, ext: es, bs: w.pl.bs, limit: w.pl.size, total: extentBytes(es, w.pl.bs)}
}

// finish checks that an operation filled its blocks (the last may be partial) and zero-pads the rest.
func (w *worker) finish(ew *extentWriter) error {
	if ew.n <= ew.total-w.pl.bs {
		return invalid("decodes to %d bytes, its destination extents hold %d", ew.n, ew.total)
	}
	if pad := ew.total - ew.n; pad > 0 && !w.opt.DstZeroed {
		if _, err := ew.Write(zeros[:pad]); err != nil {
			return err
		}
	}
	return nil
}

// blobReader returns the operation's data, hash-checked: in memory for blobs up to MaxBuffered, else a
// stream over the payload read after a first hashing pass.
func (w *worker) blobReader(ctx context.Context, op *Operation) (io.Reader, []byte, error) {
	off := w.pl.p.DataOffset + int64(op.DataOffset)
	n := int64(op.DataLength)
	check := func(sum []byte) error {
		if w.opt.SkipVerify || len(op.DataSHA256) == 0 {
			return nil
		}
		if !bytes.Equal(sum, op.DataSHA256) {
			return fmt.Errorf("data SHA-256 %x, manifest says %x: %w", sum, op.DataSHA256, ErrHashMismatch)
		}
		return nil
	}
	if n <= MaxBuffered || op.Type == OpSourceBSDiff || op.Type == OpBrotliBSDiff {
		var b []byte
		if n <= int64(cap(w.blob)) || n <= MaxBuffered {
			if int64(cap(w.blob)) < n {
				w.blob = make([]byte, n, max(n, 1<<20))
			}
			b = w.blob[:n]
			if _, err := w.pl.p.ra.ReadAt(b, off); err != nil {
				return nil, nil, fmt.Errorf("reading data blob: %w", err)
			}
		} else {
			var err error
			if b, err = safeio.ReadDataAt(w.pl.p.ra, uint64(n), off); err != nil {
				return nil, nil, fmt.Errorf("reading data blob: %w", err)
			}
		}
		if !w.opt.SkipVerify && len(op.DataSHA256) > 0 {
			sum := sha256.Sum256(b)
			if err := check(sum[:]); err != nil {
				return nil, nil, err
			}
		}
		return bytes.NewReader(b), b, nil
	}
	sec := io.NewSectionReader(w.pl.p.ra, off, n)
	if !w.opt.SkipVerify && len(op.DataSHA256) > 0 {
		h := sha256.New()
		if _, err := io.CopyBuffer(h, safeio.ContextReader(ctx, sec), w.buf); err != nil {
			return nil, nil, fmt.Errorf("reading data blob: %w", err)
		}
		if err := check(h.Sum(nil)); err != nil {
			return nil, nil, err
		}
		sec = io.NewSectionReader(w.pl.p.ra, off, n)
	}
	return bufio.NewReaderSize(sec, 256<<10), nil, nil
}

// copyOut copies a decoder's output into the destination extents.
func (w *worker) copyOut(ctx context.Context, ew *extentWriter, r io.Reader) error {
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n, err := io.ReadFull(r, w.buf)
		if n > 0 {
			if _, werr := ew.Write(w.buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			var fe *xzfilter.FormatError
			if errors.Is(err, failure.ErrInvalid) || errors.As(err, &fe) {
				return err
			}
			return invalid("corrupt compressed data: %v", err)
		}
	}
}

func (w *worker) applyOp(ctx context.Context, op *Operation) error {
	ew := w.newExtentWriter(op.DstExtents)
	switch op.Type {
	case OpZero, OpDiscard:
		if w.opt.DstZeroed {
			return nil
		}
		for ew.n < ew.total {
			if err := ctx.Err(); err != nil {
				return err
			}
			if _, err := ew.Write(zeros[:min(int64(len(zeros)), ew.total-ew.n)]); err != nil {
				return err
			}
		}
		return nil
	case OpSourceCopy:
		return w.sourceCopy(ctx, op, ew)
	}
	r, blob, err := w.blobReader(ctx, op)
	if err != nil {
		return err
	}
	switch op.Type {
	case OpReplace:
		err = w.copyOut(ctx, ew, r)
	case OpReplaceBZ:
		err = w.copyOut(ctx, ew, bzip2.NewReader(r))
	case OpReplaceXZ:
		var xr io.Reader
		if xr, err = (xzfilter.Config{Limit: ew.total}).NewReader(r); err == nil {
			err = w.copyOut(ctx, ew, xr)
		}
		if errors.Is(err, xzfilter.ErrLimit) {
			err = errTooLong
		}
	case OpZSTD:
		if w.zstd == nil {
			w.zstd, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20), zstd.WithDecoderLowmem(true))
			if err != nil {
				return err
			}
		}
		if err = w.zstd.Reset(r); err == nil {
			err = w.copyOut(ctx, ew, w.zstd)
		}
		if err != nil && !errors.Is(err, failure.ErrInvalid) && ctx.Err() == nil {
			err = invalid("corrupt zstd data: %v", err)
		}
	case OpSourceBSDiff, OpBrotliBSDiff:
		err = w.bsdiff(ctx, op, ew, blob)
	}
	if err != nil {
		return err
	}
	return w.finish(ew)
}

// source returns the old data an operation reads, after checking its hash.
func (w *worker) source(ctx context.Context, op *Operation) (image.Image, error) {
	var parts []image.Image
	for _, e := range op.SrcExtents {
		off, n := int64(e.StartBlock)*w.pl.bs, int64(e.NumBlocks)*w.pl.bs
		n = min(n, w.pl.src.Size()-off) // the old image's last block may be partial
		parts = append(parts, image.Section(w.pl.src, off, n))
	}
	src := image.Concat(parts...)
	if !w.opt.SkipVerify && len(op.SrcSHA256) > 0 {
		h := sha256.New()
		if _, err := io.CopyBuffer(h, safeio.ContextReader(ctx, image.Reader(src)), w.buf); err != nil {
			return nil, fmt.Errorf("reading source: %w", err)
		}
		if sum := h.Sum(nil); !bytes.Equal(sum, op.SrcSHA256) {
			return nil, fmt.Errorf("source SHA-256 %x, manifest says %x (the old image is not the one this delta was made from): %w", sum, op.SrcSHA256, ErrHashMismatch)
		}
	}
	return src, nil
}

func (w *worker) sourceCopy(ctx context.Context, op *Operation, ew *extentWriter) error {
	src, err := w.source(ctx, op)
	if err != nil {
		return err
	}
	if err := w.copyOut(ctx, ew, image.Reader(src)); err != nil {
		return err
	}
	return w.finish(ew)
}

func (w *worker) bsdiff(ctx context.Context, op *Operation, ew *extentWriter, patch []byte) error {
	src, err := w.source(ctx, op)
	if err != nil {
		return err
	}
	oldSize := src.Size()
	if op.SrcLength > 0 && int64(op.SrcLength) < oldSize {
		oldSize = int64(op.SrcLength)
	}
	h, err := bspatch.ParseHeader(patch)
	if err != nil {
		return err
	}
	if op.Type == OpSourceBSDiff && h.Format != "BSDIFF40" && h.Format != "BSDF2" {
		return invalid("not a bsdiff patch")
	}
	_, err = bspatch.Apply(src, oldSize, patch, ew, ew.total)
	return err
}

// Extracted describes one partition written by ExtractAll.
type Extracted struct {
	Name     string `json:"name"`
	Path     string `json:"path"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	Verified bool   `json:"verified"`
}

// ExtractAllOptions tunes ExtractAll.
type ExtractAllOptions struct {
	ExtractOptions
	// SourceDir holds the old images <name>.img for delta partitions.
	SourceDir string
}

// ExtractAll writes each named partition (all when names is empty) to dir/<name>.img. Each image is written
// under a temporary name and renamed only after it verified, so a failure never leaves a complete-looking
// image behind.
func (p *Payload) ExtractAll(ctx context.Context, dir string, names []string, opt ExtractAllOptions) ([]Extracted, error) {
	if len(names) == 0 {
		for i := range p.Manifest.Partitions {
			names = append(names, p.Manifest.Partitions[i].Name)
		}
	}
	for _, n := range names { // fail on a bad name or size before writing anything
		pu, err := p.partition(n)
		if err != nil {
			return nil, err
		}
		if err := p.checkSize(pu, opt.limit(ctx)); err != nil {
			return nil, err
		}
	}
	var out []Extracted
	for _, name := range names {
		e, err := p.extractFile(ctx, dir, name, opt)
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

func (p *Payload) extractFile(ctx context.Context, dir, name string, opt ExtractAllOptions) (Extracted, error) {
	pu, _ := p.partition(name)
	eo := opt.ExtractOptions
	eo.DstZeroed = true
	if opt.SourceDir != "" && pu.OldInfo != nil || needsSource(pu) {
		if opt.SourceDir == "" {
			return Extracted{}, &OpError{Partition: name, Index: firstSourceOp(pu), Type: pu.Operations[firstSourceOp(pu)].Type, Err: ErrNeedSource}
		}
		src, err := image.OpenFile(filepath.Join(opt.SourceDir, name+".img"))
		if err != nil {
			return Extracted{}, fmt.Errorf("payload: old image for %q: %w", name, err)
		}
		defer src.Close()
		eo.Source = src
	}
	final := filepath.Join(dir, name+".img")
	f, err := os.CreateTemp(dir, "."+name+".img.tmp-*")
	if err != nil {
		return Extracted{}, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Truncate(int64(pu.NewInfo.Size)); err != nil {
		return Extracted{}, err
	}
	if err := p.Extract(ctx, name, f, eo); err != nil {
		return Extracted{}, err
	}
	if err := f.Chmod(0o644); err != nil {
		return Extracted{}, err
	}
	if err := f.Close(); err != nil {
		return Extracted{}, err
	}
	if err := os.Rename(f.Name(), final); err != nil {
		return Extracted{}, err
	}
	ok = true
	return Extracted{Name: name, Path: final, Size: int64(pu.NewInfo.Size), SHA256: hex.EncodeToString(pu.NewInfo.Hash), Verified: !eo.SkipVerify}, nil
}

func needsSource(pu *PartitionUpdate) bool { return firstSourceOp(pu) >= 0 }

func firstSourceOp(pu *PartitionUpdate) int {
	for i := range pu.Operations {
		if isSource(pu.Operations[i].Type) {
			return i
		}
	}
	return -1
}
