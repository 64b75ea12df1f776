package avb

import (
	"crypto"
	"encoding/binary"
)

// Hash blocks in pairs: one SHA-256 stream on the SHA extensions is bound by the latency of its round
// instruction, so two independent streams interleaved run nearly twice as fast on one core. dm-verity
// is all independent H(salt || block) digests, which is exactly that shape.

var sha256IV = [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}

// pairHasher computes SHA-256(salt || a) and SHA-256(salt || b) for blocks a and b of blockSize bytes
// (at least 64): the salt and the block's first bytes make whole 64-byte blocks (head), the block's
// middle is hashed in place, and its last bytes with the padding go through tail buffers.
type pairHasher struct {
	saltLen      int
	head1, head2 []byte
	tail1, tail2 []byte
	headData     int // bytes of the block that complete the head
	bits         uint64
}

func newPairHasher(salt []byte, blockSize int) *pairHasher {
	k := (64 - len(salt)%64) % 64
	rest := (blockSize - k) % 64
	tail := (rest + 1 + 8 + 63) &^ 63
	p := &pairHasher{saltLen: len(salt), headData: k, bits: uint64(len(salt)+blockSize) * 8,
		head1: make([]byte, len(salt)+k), head2: make([]byte, len(salt)+k),
		tail1: make([]byte, tail), tail2: make([]byte, tail)}
	copy(p.head1, salt)
	copy(p.head2, salt)
	return p
}

// usePairs says whether hashBlocks can hash two blocks at a time.
func usePairs(hash crypto.Hash, blockSize int64) bool {
	return haveSHA256x2 && hash == crypto.SHA256 && blockSize >= 64
}

// sum writes the two digests into o1 and o2 (32 bytes each); a and b are blocks of the size given to
// newPairHasher.
func (p *pairHasher) sum(a, b, o1, o2 []byte) {
	var st [16]uint32
	copy(st[0:8], sha256IV[:])
	copy(st[8:16], sha256IV[:])
	k := p.headData
	if len(p.head1) > 0 {
		copy(p.head1[p.saltLen:], a[:k])
		copy(p.head2[p.saltLen:], b[:k])
		sha256x2(&st, &p.head1[0], &p.head2[0], len(p.head1)/64)
	}
	mid := (len(a) - k) / 64
	if mid > 0 {
		sha256x2(&st, &a[k], &b[k], mid)
	}
	r := k + mid*64
	n := copy(p.tail1, a[r:])
	copy(p.tail2, b[r:])
	pad(p.tail1, n, p.bits)
	pad(p.tail2, n, p.bits)
	sha256x2(&st, &p.tail1[0], &p.tail2[0], len(p.tail1)/64)
	for i := 0; i < 8; i++ {
		binary.BigEndian.PutUint32(o1[4*i:], st[i])
		binary.BigEndian.PutUint32(o2[4*i:], st[8+i])
	}
}

// pad ends a message of which buf holds the last n bytes: 0x80, zeros, the length in bits.
func pad(buf []byte, n int, bits uint64) {
	buf[n] = 0x80
	clear(buf[n+1:])
	binary.BigEndian.PutUint64(buf[len(buf)-8:], bits)
}
