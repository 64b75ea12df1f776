package avb

import (
	"bytes"
	"context"
	"crypto"
	"math/rand/v2"
	"testing"

	"github.com/romforge/romforge/progress"
)

// referenceHashtree builds the tree the plain way: every block hashed, no shortcuts, one goroutine.
func referenceHashtree(data []byte, imageSize, blockSize int64, hash crypto.Hash, salt []byte) (root, tree []byte) {
	lay := newTreeLayout(imageSize, blockSize, hash.Size())
	tree = make([]byte, lay.treeSize)
	padded := make([]byte, imageSize)
	copy(padded, data)
	digest := func(b []byte) []byte {
		h := hash.New()
		h.Write(salt)
		h.Write(b)
		return h.Sum(nil)
	}
	if len(lay.levelSizes) == 0 {
		return digest(padded), tree
	}
	src := padded
	for i := range lay.levelSizes {
		dst := tree[lay.levelOffsets[i] : lay.levelOffsets[i]+lay.levelSizes[i]]
		for j := int64(0); j*blockSize < int64(len(src)); j++ {
			copy(dst[j*int64(lay.digestStride):], digest(src[j*blockSize:(j+1)*blockSize]))
		}
		src = dst
	}
	return digest(src), tree
}

// Property: with zero blocks anywhere (free space, holes, the padding past the data), the shortcut
// tree equals the plain one, for SHA-256 and SHA-1, any salt and block size.
func TestHashtreeZeroBlocksMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(60, 61))
	for round := range 150 {
		blockSize := int64([]int{512, 1024, 4096}[rng.IntN(3)])
		nblocks := 1 + rng.Int64N(700)
		imageSize := nblocks * blockSize
		dataSize := imageSize - rng.Int64N(blockSize*min(nblocks, 8))
		data := make([]byte, dataSize)
		for b := int64(0); b*blockSize < dataSize; b++ {
			blk := data[b*blockSize : min((b+1)*blockSize, dataSize)]
			switch rng.IntN(4) {
			case 0, 1: // zeros
			case 2:
				for i := range blk {
					blk[i] = byte(rng.Uint32())
				}
			case 3: // one stray byte in a block of zeros
				blk[rng.IntN(len(blk))] = 1
			}
		}
		hash := crypto.SHA256
		if rng.IntN(4) == 0 {
			hash = crypto.SHA1
		}
		salt := make([]byte, rng.IntN(70))
		for i := range salt {
			salt[i] = byte(rng.Uint32())
		}
		root, tree, err := computeHashtree(context.Background(), bytes.NewReader(data), dataSize, imageSize, blockSize, hash, salt, progress.Discard.Task("", 0))
		if err != nil {
			t.Fatal(err)
		}
		wantRoot, wantTree := referenceHashtree(data, imageSize, blockSize, hash, salt)
		if !bytes.Equal(root, wantRoot) || !bytes.Equal(tree, wantTree) {
			t.Fatalf("round %d (%d blocks of %d, data %d, %v, salt %d bytes): tree differs from the reference", round, nblocks, blockSize, dataSize, hash, len(salt))
		}
	}
}

// A system image is often half free space (zeros once expanded): those blocks cost a comparison.
func BenchmarkHashtreeHalfFree(b *testing.B) {
	data := pattern(64<<20, 3)
	clear(data[32<<20:])
	r := bytes.NewReader(data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, _, err := computeHashtree(context.Background(), r, int64(len(data)), int64(len(data)), 4096, crypto.SHA256, []byte("salt"), progress.Discard.Task("", 0)); err != nil {
			b.Fatal(err)
		}
	}
}
