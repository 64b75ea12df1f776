package lz4block

import (
	"encoding/binary"
	"math/bits"
)

const (
	minMatch  = 4
	maxOffset = 65535
	// endGuard is how many bytes at the end of a block are always literals. LZ4 decoders demand that the
	// last match starts at least 12 bytes before the end and the last 5 bytes are literals; ending every
	// block with at least 12 literals satisfies both whatever the last match's length.
	endGuard = 12
	hashLog  = 15
	// rebase keeps stored positions from overflowing int32 across many calls.
	rebase = 1 << 30
)

// Compressor compresses blocks. It keeps its tables between calls (no clearing per block), so use one
// Compressor per goroutine.
type Compressor struct {
	level    int
	attempts int
	base     int32
	head     []int32
	chain    []uint16
}

// NewCompressor returns a compressor: level 0 is fast and greedy, 1-12 use hash chains (lz4hc-like,
// 9 is lz4hc's default).
func NewCompressor(level int) *Compressor {
	c := &Compressor{level: level, head: make([]int32, 1<<hashLog)}
	if level > 0 {
		c.attempts = 1 << min(level-1, 12)
		c.chain = make([]uint16, 1<<16)
	}
	c.base = 1 // stored 0 entries are then always stale
	return c
}

func hash4(v uint32) uint32 { return (v * 2654435761) >> (32 - hashLog) }

func load32(b []byte, i int) uint32 { return binary.LittleEndian.Uint32(b[i:]) }

// commonLen returns how many bytes a[i:] and a[j:] share, comparing no further than limit (i < j < limit).
func commonLen(a []byte, i, j, limit int) int {
	n := 0
	for j+8 <= limit {
		x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(a[j:])
		if x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		i += 8
		j += 8
		n += 8
	}
	for j < limit && a[i] == a[j] {
		i++
		j++
		n++
	}
	return n
}

func extLen(n int) int {
	if n < 15 {
		return 0
	}
	return (n-15)/255 + 1
}

// seqCost is the encoded size of a sequence of lit literals and a match of length ml.
func seqCost(lit, ml int) int { return 1 + extLen(lit) + lit + 2 + extLen(ml-minMatch) }

// fitLiterals returns the most literals a final literals-only sequence can carry in room bytes.
func fitLiterals(room int) int {
	if room <= 0 {
		return 0
	}
	f := room - 1
	for f > 0 && 1+extLen(f)+f > room {
		f--
	}
	return f
}

func putLen(dst []byte, op, n int) int {
	for n >= 255 {
		dst[op] = 255
		op++
		n -= 255
	}
	dst[op] = byte(n)
	return op + 1
}

func emitSeq(dst []byte, op int, lits []byte, off, ml int) int {
	lit := len(lits)
	m := ml - minMatch
	tok := byte(min(lit, 15)<<4) | byte(min(m, 15))
	dst[op] = tok
	op++
	if lit >= 15 {
		op = putLen(dst, op, lit-15)
	}
	op += copy(dst[op:], lits)
	dst[op] = byte(off)
	dst[op+1] = byte(off >> 8)
	op += 2
	if m >= 15 {
		op = putLen(dst, op, m-15)
	}
	return op
}

func emitLast(dst []byte, op int, lits []byte) int {
	lit := len(lits)
	dst[op] = byte(min(lit, 15) << 4)
	op++
	if lit >= 15 {
		op = putLen(dst, op, lit-15)
	}
	return op + copy(dst[op:], lits)
}

func (c *Compressor) advance(n int) {
	if int64(c.base)+int64(n)+maxOffset+1 >= rebase {
		clear(c.head)
		c.base = 1
		return
	}
	c.base += int32(n) + maxOffset + 1
}

// CompressDestSize compresses as long a prefix of src as fits into dst (len(dst) is the budget) as one
// self-contained LZ4 block and returns how many bytes of src it consumed and how many it wrote. The block
// decodes to exactly src[:consumed]. With an empty dst or src nothing is consumed.
func (c *Compressor) CompressDestSize(src, dst []byte) (consumed, written int) {
	if len(src) == 0 || len(dst) == 0 {
		return 0, 0
	}
	// No block expands more than 255:1, so input beyond that can never be consumed.
	if lim := len(dst)*255 + 64; len(src) > lim {
		src = src[:lim]
	}
	if c.level > 0 {
		consumed, written = c.hc(src, dst)
	} else {
		consumed, written = c.fast(src, dst)
	}
	c.advance(len(src))
	return consumed, written
}

func (c *Compressor) finish(src, dst []byte, anchor, op int) (int, int) {
	f := min(len(src)-anchor, fitLiterals(len(dst)-op))
	op = emitLast(dst, op, src[anchor:anchor+f])
	return anchor + f, op
}

func (c *Compressor) fast(src, dst []byte) (int, int) {
	n, budget := len(src), len(dst)
	base := c.base
	head := c.head
	matchLimit := n - endGuard
	ipLimit := matchLimit - minMatch // last position a match may start
	anchor, op, ip := 0, 0, 1
	if ipLimit < 1 {
		return c.finish(src, dst, anchor, op)
	}
	head[hash4(load32(src, 0))] = base
	for {
		var ref int
		step, searched := 1, 1<<6
		for {
			if ip > ipLimit || op+ip-anchor >= budget {
				return c.finish(src, dst, anchor, op)
			}
			h := hash4(load32(src, ip))
			ref = int(head[h] - base)
			head[h] = int32(ip) + base
			if ref >= 0 && ip-ref <= maxOffset && load32(src, ref) == load32(src, ip) {
				break
			}
			ip += step
			step = searched >> 6
			searched++
		}
		for ip > anchor && ref > 0 && src[ip-1] == src[ref-1] {
			ip--
			ref--
		}
		ml := minMatch + commonLen(src, ref+minMatch, ip+minMatch, matchLimit)
		lit := ip - anchor
		if op+seqCost(lit, ml)+endGuard+1 > budget {
			return c.finish(src, dst, anchor, op)
		}
		op = emitSeq(dst, op, src[anchor:ip], ip-ref, ml)
		ip += ml
		anchor = ip
		if ip > ipLimit {
			return c.finish(src, dst, anchor, op)
		}
		// Remember a position inside the match so that repeats are found quickly.
		head[hash4(load32(src, ip-2))] = int32(ip-2) + base
	}
}

type hcState struct {
	c          *Compressor
	src        []byte
	next       int // next position to insert into the chains
	matchLimit int
}

func (s *hcState) insertUpTo(target int) {
	c, src, base := s.c, s.src, s.c.base
	for p := s.next; p < target; p++ {
		h := hash4(load32(src, p))
		prev := int(c.head[h] - base)
		d := 0
		if prev >= 0 && p-prev <= maxOffset {
			d = p - prev
		}
		c.chain[p&0xffff] = uint16(d)
		c.head[h] = int32(p) + base
	}
	if target > s.next {
		s.next = target
	}
}

// find returns the longest match for ip among earlier positions (length 0 if none).
func (s *hcState) find(ip int) (ml, ref int) {
	s.insertUpTo(ip)
	c, src := s.c, s.src
	cand := int(c.head[hash4(load32(src, ip))] - c.base)
	best := minMatch - 1
	v := load32(src, ip)
	for n := c.attempts; n > 0 && cand >= 0 && ip-cand <= maxOffset; n-- {
		if ip+best < s.matchLimit && src[cand+best] == src[ip+best] && load32(src, cand) == v {
			l := minMatch + commonLen(src, cand+minMatch, ip+minMatch, s.matchLimit)
			if l > best {
				best, ref = l, cand
				if ip+l >= s.matchLimit {
					break
				}
			}
		}
		d := int(c.chain[cand&0xffff])
		if d == 0 {
			break
		}
		cand -= d
	}
	if best < minMatch {
		return 0, 0
	}
	return best, ref
}

func (c *Compressor) hc(src, dst []byte) (int, int) {
	n, budget := len(src), len(dst)
	s := &hcState{c: c, src: src, matchLimit: n - endGuard}
	ipLimit := s.matchLimit - minMatch
	anchor, op, ip := 0, 0, 1
	if ipLimit < 1 {
		return c.finish(src, dst, anchor, op)
	}
	for ip <= ipLimit && op+ip-anchor < budget {
		ml, ref := s.find(ip)
		if ml == 0 {
			ip++
			continue
		}
		// Lazy matching: prefer a longer match starting one byte later.
		for ip+1 <= ipLimit {
			ml2, ref2 := s.find(ip + 1)
			if ml2 <= ml {
				break
			}
			ip, ml, ref = ip+1, ml2, ref2
		}
		for ip > anchor && ref > 0 && src[ip-1] == src[ref-1] {
			ip--
			ref--
			ml++
		}
		if op+seqCost(ip-anchor, ml)+endGuard+1 > budget {
			break
		}
		op = emitSeq(dst, op, src[anchor:ip], ip-ref, ml)
		ip += ml
		anchor = ip
	}
	return c.finish(src, dst, anchor, op)
}
