package avb

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/romforge/romforge/progress"
)

// treeLayout is the shape of a dm-verity hash tree as avbtool lays it out: levels stored top level
// first, each level padded to a hash block, digests padded to a power of two.
type treeLayout struct {
	blockSize    int64
	digestSize   int
	digestStride int     // digest size rounded up to a power of two
	levelOffsets []int64 // offset of level i (0 = hashes of the data) inside the tree
	levelSizes   []int64
	treeSize     int64
}

func newTreeLayout(imageSize, blockSize int64, digestSize int) treeLayout {
	stride := 1
	for stride < digestSize {
		stride <<= 1
	}
	t := treeLayout{blockSize: blockSize, digestSize: digestSize, digestStride: stride}
	for size := imageSize; size > blockSize; {
		blocks := (size + blockSize - 1) / blockSize
		lvl := int64(roundUp(uint64(blocks*int64(stride)), uint64(blockSize)))
		t.levelSizes = append(t.levelSizes, lvl)
		t.treeSize += lvl
		size = lvl
	}
	t.levelOffsets = make([]int64, len(t.levelSizes))
	for n := range t.levelSizes {
		for m := n + 1; m < len(t.levelSizes); m++ {
			t.levelOffsets[n] += t.levelSizes[m]
		}
	}
	return t
}

// MaxHashtreeSize is the size of the tree for an image of imageSize bytes (avbtool's
// calc_hash_level_offsets), used to decide how much of a partition the tree needs.
func MaxHashtreeSize(imageSize, blockSize int64, hash crypto.Hash) int64 {
	return newTreeLayout(imageSize, blockSize, hash.Size()).treeSize
}

// chunkBlocks is how many data blocks one worker reads and hashes at a time: 256 KiB for 4 KiB blocks,
// so the buffer stays in the core's L2 cache between the read and the hashing (1 MiB was 19% slower).
const chunkBlocks = 64

// computeHashtree builds the tree for the first imageSize bytes of r (imageSize a multiple of blockSize;
// bytes beyond dataSize read as zeros) and returns the root digest and the whole tree. Level 0 is hashed
// in parallel by GOMAXPROCS workers reading 256 KiB chunks at their own offsets; the upper levels (1/128 of
// the data for SHA-256) are hashed in parallel from memory.
func computeHashtree(ctx context.Context, r io.ReaderAt, dataSize, imageSize, blockSize int64, hash crypto.Hash, salt []byte, task progress.Task) (root, tree []byte, err error) {
	if imageSize <= 0 || imageSize%blockSize != 0 {
		return nil, nil, invalid("hashtree: image size %d is not a positive multiple of the %d-byte block", imageSize, blockSize)
	}
	lay := newTreeLayout(imageSize, blockSize, hash.Size())
	tree = make([]byte, lay.treeSize)
	if len(lay.levelSizes) == 0 { // a single block: its hash is the root
		buf := make([]byte, blockSize)
		if err := readZeroPadded(r, buf, 0, dataSize); err != nil {
			return nil, nil, err
		}
		h := hash.New()
		h.Write(salt)
		h.Write(buf)
		task.Add(imageSize)
		return h.Sum(nil), tree, nil
	}
	// level 0 from the image. A block of zeros always has the same digest: free space and holes cost a
	// comparison, not a hash, and the padding past dataSize is not even read.
	zh := hash.New()
	zh.Write(salt)
	zh.Write(make([]byte, blockSize))
	zero := zh.Sum(nil)
	lvl0 := tree[lay.levelOffsets[0] : lay.levelOffsets[0]+lay.levelSizes[0]]
	nblocks := imageSize / blockSize
	err = parallelBlocks(ctx, nblocks, func(buf []byte, first, n int64) error {
		out := lvl0[first*int64(lay.digestStride):]
		if first*blockSize >= dataSize {
			for i := range int(n) {
				copy(out[i*lay.digestStride:], zero)
			}
			task.Add(n * blockSize)
			return nil
		}
		b := buf[:n*blockSize]
		if err := readZeroPadded(r, b, first*blockSize, dataSize); err != nil {
			return err
		}
		hashBlocks(hash, salt, b, blockSize, out, lay.digestStride, zero)
		task.Add(n * blockSize)
		return nil
	}, blockSize)
	if err != nil {
		return nil, nil, err
	}
	// upper levels from memory
	for i := 1; i < len(lay.levelSizes); i++ {
		src := tree[lay.levelOffsets[i-1] : lay.levelOffsets[i-1]+lay.levelSizes[i-1]]
		dst := tree[lay.levelOffsets[i] : lay.levelOffsets[i]+lay.levelSizes[i]]
		n := int64(len(src)) / blockSize
		err := parallelBlocks(ctx, n, func(_ []byte, first, cnt int64) error {
			hashBlocks(hash, salt, src[first*blockSize:(first+cnt)*blockSize], blockSize, dst[first*int64(lay.digestStride):], lay.digestStride, nil)
			return nil
		}, 0)
		if err != nil {
			return nil, nil, err
		}
	}
	top := len(lay.levelSizes) - 1
	h := hash.New()
	h.Write(salt)
	h.Write(tree[lay.levelOffsets[top] : lay.levelOffsets[top]+lay.levelSizes[top]])
	return h.Sum(nil), tree, nil
}

// hashBlocks writes H(salt || block) for each block of data into out at stride intervals. With zero (the
// digest of a block of zeros) given, all-zero blocks get it without being hashed.
func hashBlocks(hash crypto.Hash, salt, data []byte, blockSize int64, out []byte, stride int, zero []byte) {
	n := int(int64(len(data)) / blockSize)
	block := func(i int) []byte { return data[int64(i)*blockSize : int64(i+1)*blockSize] }
	todo := make([]int, 0, n) // the blocks that need hashing
	for i := range n {
		if zero != nil && isZero(block(i)) {
			copy(out[i*stride:], zero)
			continue
		}
		todo = append(todo, i)
	}
	k := 0
	if len(todo) >= 2 && usePairs(hash, blockSize) {
		p := newPairHasher(salt, int(blockSize))
		for ; k+1 < len(todo); k += 2 {
			a, b := todo[k]*stride, todo[k+1]*stride
			p.sum(block(todo[k]), block(todo[k+1]), out[a:a+32], out[b:b+32])
		}
	}
	h := hash.New()
	for ; k < len(todo); k++ {
		h.Reset()
		h.Write(salt)
		h.Write(block(todo[k]))
		o := todo[k] * stride
		h.Sum(out[o:o]) // appends in place: out has room for the digest
	}
}

// zeros is compared against, a 64 KiB page at a time (bytes.Equal runs at memory speed).
var zeros [64 << 10]byte

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// parallelBlocks runs fn over [0, n) blocks in chunks of chunkBlocks, on GOMAXPROCS workers. Each
// worker owns a buffer of chunkBlocks*bufBlock bytes (none when bufBlock is 0).
func parallelBlocks(ctx context.Context, n int64, fn func(buf []byte, first, cnt int64) error, bufBlock int64) error {
	workers := runtime.GOMAXPROCS(0)
	if chunks := (n + chunkBlocks - 1) / chunkBlocks; int64(workers) > chunks {
		workers = int(chunks)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			if bufBlock > 0 {
				buf = make([]byte, chunkBlocks*bufBlock)
			}
			for {
				first := next.Add(chunkBlocks) - chunkBlocks
				if first >= n {
					return
				}
				if err := ctx.Err(); err != nil {
					once.Do(func() { firstErr = err })
					next.Store(n)
					return
				}
				if err := fn(buf, first, min(chunkBlocks, n-first)); err != nil {
					once.Do(func() { firstErr = err })
					next.Store(n)
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// readZeroPadded fills buf from r at off; bytes at or beyond dataSize are zeros (avbtool pads the image
// to a whole block with zeros before hashing).
func readZeroPadded(r io.ReaderAt, buf []byte, off, dataSize int64) error {
	n := int64(len(buf))
	if off >= dataSize {
		clear(buf)
		return nil
	}
	if avail := dataSize - off; avail < n {
		clear(buf[avail:])
		buf = buf[:avail]
	}
	m, err := r.ReadAt(buf, off)
	if err != nil && !(errors.Is(err, io.EOF) && m == len(buf)) {
		if errors.Is(err, io.EOF) {
			return formatErr(off+int64(m), "image ends early: %d bytes expected", dataSize)
		}
		return fmt.Errorf("avb: reading image at %d: %w", off, err)
	}
	return nil
}
