package sparse

import (
	"encoding/binary"
	"hash/crc32"
)

// CRC-32 (IEEE) of long runs of one repeated 32-bit word, in time logarithmic in the run length, so
// that checking a tiny file whose fills expand to terabytes costs nothing. The CRC register update for
// appending bytes is affine over GF(2): appending the word w maps a CRC c to A·c ⊕ crc(w), where A is
// the operator "append 4 zero bytes". Repeating it m times is that affine map raised to the m-th power.

// gf2 is a 32×32 matrix over GF(2); column i is the image of bit i.
type gf2 [32]uint32

func (m *gf2) apply(v uint32) uint32 {
	var r uint32
	for i := 0; v != 0; i, v = i+1, v>>1 {
		if v&1 != 0 {
			r ^= m[i]
		}
	}
	return r
}

// then returns the matrix of applying a, then b.
func (a *gf2) then(b *gf2) gf2 {
	var c gf2
	for i := range a {
		c[i] = b.apply(a[i])
	}
	return c
}

// word4 is the operator "append 4 zero bytes" on the (reflected, 0xEDB88320) CRC register.
var word4 = func() gf2 {
	var bit gf2
	bit[0] = 0xedb88320
	for i := 1; i < 32; i++ {
		bit[i] = 1 << (i - 1)
	}
	m := bit
	for i := 1; i < 32; i++ { // 32 zero bits
		m = m.then(&bit)
	}
	return m
}()

// affine is c ↦ m·c ⊕ k.
type affine struct {
	m gf2
	k uint32
}

func (a *affine) then(b *affine) affine {
	return affine{m: a.m.then(&b.m), k: b.m.apply(a.k) ^ b.k}
}

// directCRCLimit is the run length below which the table-driven CRC is faster than the algebra.
const directCRCLimit = 1 << 20

// crcFill returns crc32.Update(crc, IEEE, w repeated n/4 times, little-endian); n is a multiple of 4.
func crcFill(crc uint32, w uint32, n int64, scratch []byte) uint32 {
	if n <= directCRCLimit && int64(len(scratch)) >= min(n, directCRCLimit) {
		fillPattern(scratch[:n], w, 0)
		return crc32.Update(crc, crc32.IEEETable, scratch[:n])
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], w)
	step := affine{m: word4, k: crc32.ChecksumIEEE(b[:])}
	var id gf2
	for i := range id {
		id[i] = 1 << i
	}
	acc := affine{m: id}
	for m := n / 4; m > 0; m >>= 1 {
		if m&1 != 0 {
			acc = acc.then(&step)
		}
		if m > 1 {
			step = step.then(&step)
		}
	}
	return acc.m.apply(crc) ^ acc.k
}
