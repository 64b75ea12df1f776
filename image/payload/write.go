package payload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	dsbzip2 "github.com/dsnet/compress/bzip2"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/safeio"
	"github.com/romforge/romforge/progress"
)

// WritePartition is one partition of a payload to write.
type WritePartition struct {
	Name  string
	Image image.Image
	// Compression is the operation type for its data: OpReplace (the zero value), OpReplaceBZ, OpReplaceXZ
	// or OpZSTD. A chunk that does not shrink is stored as REPLACE.
	Compression OpType
	// FilesystemType and Version are copied into the manifest when set.
	FilesystemType string
	Version        string
}

// WriteOptions tunes Write. The zero value writes 2 MiB operations of 4096-byte blocks, unsigned.
type WriteOptions struct {
	OpSize    int64 // bytes of partition per operation (multiple of BlockSize; default 2 MiB)
	BlockSize int   // default 4096
	// ZeroOps writes ZERO operations for all-zero chunks. (AOSP's paycheck accepts ZERO only in delta
	// payloads of minor version ≥ 4, so its full-payload check rejects them; update_engine applies them.)
	ZeroOps bool
	// Choose, when set, picks each operation's type from its data (overriding WritePartition.Compression);
	// it may return OpZero for a chunk that is all zeros.
	Choose func(partition string, index int, data []byte) OpType
	// Compress, when set, compresses data for operation type t (e.g. with an external xz and a BCJ filter);
	// returning nil, nil falls back to the built-in compressor.
	Compress func(t OpType, data []byte) ([]byte, error)
	// XZDictCap is the LZMA2 dictionary of the built-in xz compressor (default: the operation size).
	XZDictCap int
	Workers   int // parallel compressors (default GOMAXPROCS)
	// MinorVersion (0 for full payloads), MaxTimestamp, SecurityPatchLevel and Dynamic go into the manifest.
	MinorVersion       uint32
	MaxTimestamp       int64
	SecurityPatchLevel string
	Dynamic            *DynamicPartitionMetadata
	TempDir            string // where blobs are spooled until the manifest is known (default os.TempDir())
	Progress           progress.Reporter
}

// Write writes a full (non-delta) payload of parts to w. Blobs are spooled to a temporary file because the
// manifest, which comes first, records their offsets and hashes.
func Write(ctx context.Context, w io.Writer, parts []WritePartition, opt WriteOptions) error {
	if opt.BlockSize == 0 {
		opt.BlockSize = 4096
	}
	if opt.OpSize == 0 {
		opt.OpSize = 2 << 20
	}
	bs := int64(opt.BlockSize)
	if bs < 512 || bs&(bs-1) != 0 || opt.OpSize < bs || opt.OpSize%bs != 0 {
		return fmt.Errorf("payload: op size %d must be a multiple of the block size %d (a power of two ≥ 512)", opt.OpSize, bs)
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	spool, err := os.CreateTemp(opt.TempDir, "romforge-payload-*.blobs")
	if err != nil {
		return err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	m := &Manifest{BlockSize: uint32(bs), MinorVersion: opt.MinorVersion, MaxTimestamp: opt.MaxTimestamp,
		SecurityPatchLevel: opt.SecurityPatchLevel, Dynamic: opt.Dynamic}
	var offset uint64
	for _, part := range parts {
		pu, err := writePartition(ctx, spool, &offset, part, &opt)
		if err != nil {
			return err
		}
		m.Partitions = append(m.Partitions, *pu)
	}
	manifest := m.Encode()
	var hdr [HeaderSize]byte
	copy(hdr[:], Magic)
	binary.BigEndian.PutUint64(hdr[4:], 2)
	binary.BigEndian.PutUint64(hdr[12:], uint64(len(manifest)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := w.Write(manifest); err != nil {
		return err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err = io.Copy(w, spool)
	return err
}

type chunkResult struct {
	op   Operation
	data []byte // raw chunk (for the partition hash)
	blob []byte
	err  error
}

func writePartition(ctx context.Context, spool io.Writer, offset *uint64, part WritePartition, opt *WriteOptions) (*PartitionUpdate, error) {
	size := part.Image.Size()
	bs := int64(opt.BlockSize)
	task := progress.OrDiscard(opt.Progress).Task(part.Name, size)
	pu := &PartitionUpdate{Name: part.Name, FilesystemType: part.FilesystemType, Version: part.Version,
		NewInfo: &PartitionInfo{Size: uint64(size)}}
	hasher := sha256.New()

	// Chunks are compressed by a pool and collected in order through a queue of futures, so at most
	// about 2×Workers chunks are in memory.
	queue := make(chan chan chunkResult, opt.Workers*2)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(queue)
		sem := make(chan struct{}, opt.Workers)
		for i, start := 0, int64(0); start < size; i, start = i+1, start+opt.OpSize {
			n := min(opt.OpSize, size-start)
			fut := make(chan chunkResult, 1)
			select {
			case queue <- fut:
			case <-ctx.Done():
				return
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func(i int, start, n int64) {
				defer func() { <-sem }()
				fut <- makeChunk(part, opt, i, start, n, bs)
			}(i, start, n)
		}
	}()
	for fut := range queue {
		var r chunkResult
		select {
		case r = <-fut:
		case <-ctx.Done():
			task.Done(ctx.Err())
			return nil, ctx.Err()
		}
		if r.err != nil {
			cancel()
			task.Done(r.err)
			return nil, r.err
		}
		hasher.Write(r.data)
		if r.blob != nil {
			r.op.HasData = true
			r.op.DataOffset, r.op.DataLength = *offset, uint64(len(r.blob))
			sum := sha256.Sum256(r.blob)
			r.op.DataSHA256 = sum[:]
			if _, err := spool.Write(r.blob); err != nil {
				cancel()
				task.Done(err)
				return nil, err
			}
			*offset += uint64(len(r.blob))
		}
		pu.Operations = append(pu.Operations, r.op)
		task.Add(int64(len(r.data)))
	}
	if err := ctx.Err(); err != nil {
		task.Done(err)
		return nil, err
	}
	pu.NewInfo.Hash = hasher.Sum(nil)
	task.Done(nil)
	return pu, nil
}

func makeChunk(part WritePartition, opt *WriteOptions, i int, start, n, bs int64) chunkResult {
	data := make([]byte, n)
	if _, err := part.Image.ReadAt(data, start); err != nil && !(errors.Is(err, io.EOF)) {
		return chunkResult{err: fmt.Errorf("payload: reading %s at %d: %w", part.Name, start, err)}
	}
	op := Operation{DstExtents: []Extent{{StartBlock: uint64(start / bs), NumBlocks: uint64((n + bs - 1) / bs)}}}
	t := part.Compression
	if opt.Choose != nil {
		t = opt.Choose(part.Name, i, data)
	}
	if opt.ZeroOps && safeio.AllZero(data) {
		t = OpZero
	}
	if t == OpZero {
		if !safeio.AllZero(data) {
			return chunkResult{err: fmt.Errorf("payload: %s operation %d: ZERO chosen for data that is not zero", part.Name, i)}
		}
		op.Type = OpZero
		return chunkResult{op: op, data: data}
	}
	blob := data
	if t != OpReplace {
		var err error
		blob, err = compress(opt, t, data)
		if err != nil {
			return chunkResult{err: fmt.Errorf("payload: compressing %s operation %d: %w", part.Name, i, err)}
		}
		if len(blob) >= len(data) { // paycheck requires compressed data to be smaller than its blocks
			t, blob = OpReplace, data
		}
	}
	op.Type = t
	return chunkResult{op: op, data: data, blob: blob}
}

var zstdEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))

func compress(opt *WriteOptions, t OpType, data []byte) ([]byte, error) {
	if opt.Compress != nil {
		b, err := opt.Compress(t, data)
		if err != nil || b != nil {
			return b, err
		}
	}
	var buf bytes.Buffer
	switch t {
	case OpReplaceBZ:
		w, err := dsbzip2.NewWriter(&buf, &dsbzip2.WriterConfig{Level: 9})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(data); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case OpReplaceXZ:
		dict := opt.XZDictCap
		if dict == 0 {
			dict = max(int(opt.OpSize), 1<<12)
		}
		w, err := xz.WriterConfig{DictCap: dict, CheckSum: xz.CRC64}.NewWriter(&buf)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(data); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case OpZSTD:
		return zstdEnc.EncodeAll(data, nil), nil
	default:
		return nil, fmt.Errorf("cannot write operation type %s", t)
	}
	return buf.Bytes(), nil
}
