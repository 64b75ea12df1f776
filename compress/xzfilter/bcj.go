package xzfilter

import (
	"encoding/binary"
	"io"
)

// A converter undoes (or, for encoding, applies) one non-last xz filter over a window of bytes in place. It
// returns how many leading bytes are final; the rest (an instruction cut by the window's end) is offered again
// with more bytes after it. At the end of the data the unconverted tail passes through unchanged, as xz does.
type converter interface {
	convert(buf []byte) int
}

// x86 is the x86 BCJ filter (id 0x04): relative CALL (E8) and JMP (E9) targets are stored as absolute
// addresses. prevMask remembers which of the last bytes were E8/E9 opcodes so that overlapping candidates
// are treated exactly as the encoder treated them.
type x86 struct {
	pos      uint32 // stream position of buf[0]
	prevPos  uint32
	prevMask uint32
	encode   bool
}

func newX86(start uint32, encode bool) *x86 {
	// prevPos starts 5 bytes before the start so that the first opcode sees a clean history.
	return &x86{pos: start, prevPos: start - 5, encode: encode}
}

// x86 operand high bytes that mark a plausible near target (0x00 or 0xFF).
func x86Edge(b byte) bool { return b == 0 || b == 0xFF }

var (
	x86Allowed = [8]bool{true, true, true, false, true, false, false, false}
	x86BitNum  = [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
)

func (f *x86) convert(buf []byte) int {
	if len(buf) < 5 {
		return 0
	}
	pos, prevPos, mask := f.pos, f.prevPos, f.prevMask
	if pos-prevPos > 5 {
		prevPos = pos - 5
	}
	limit := len(buf) - 5
	i := 0
	for i <= limit {
		b := buf[i]
		if b != 0xE8 && b != 0xE9 {
			i++
			continue
		}
		here := pos + uint32(i)
		gap := here - prevPos
		prevPos = here
		if gap > 5 {
			mask = 0
		} else {
			for k := uint32(0); k < gap; k++ {
				mask = (mask & 0x77) << 1
			}
		}
		b = buf[i+4]
		if x86Edge(b) && x86Allowed[(mask>>1)&7] && mask>>1 < 0x10 {
			src := binary.LittleEndian.Uint32(buf[i+1:])
			var dst uint32
			for {
				if f.encode {
					dst = src + here + 5
				} else {
					dst = src - (here + 5)
				}
				if mask == 0 {
					break
				}
				n := x86BitNum[mask>>1]
				b = byte(dst >> (24 - n*8))
				if !x86Edge(b) {
					break
				}
				src = dst ^ (1<<(32-n*8) - 1)
			}
			// Bits 24..31 are a sign extension of bit 24.
			dst = dst&0x01FFFFFF | -(dst>>24&1)<<25
			binary.LittleEndian.PutUint32(buf[i+1:], dst)
			i += 5
			mask = 0
		} else {
			i++
			mask |= 1
			if x86Edge(b) {
				mask |= 0x10
			}
		}
	}
	f.pos += uint32(i)
	f.prevPos, f.prevMask = prevPos, mask
	return i
}

// arm is the ARM BCJ filter (id 0x07): BL instructions (condition "always", byte 3 == 0xEB) carry absolute
// word targets.
type arm struct {
	pos    uint32
	encode bool
}

func (f *arm) convert(buf []byte) int {
	i := 0
	for ; i+4 <= len(buf); i += 4 {
		if buf[i+3] != 0xEB {
			continue
		}
		v := (uint32(buf[i+2])<<16 | uint32(buf[i+1])<<8 | uint32(buf[i])) << 2
		pc := f.pos + uint32(i) + 8
		if f.encode {
			v += pc
		} else {
			v -= pc
		}
		v >>= 2
		buf[i], buf[i+1], buf[i+2] = byte(v), byte(v>>8), byte(v>>16)
	}
	f.pos += uint32(i)
	return i
}

// armThumb is the ARM-Thumb BCJ filter (id 0x08): the two halves of a Thumb BL pair (F000 / F800 prefixes)
// carry an absolute halfword target.
type armThumb struct {
	pos    uint32
	encode bool
}

func (f *armThumb) convert(buf []byte) int {
	i := 0
	for ; i+4 <= len(buf); i += 2 {
		if buf[i+1]&0xF8 != 0xF0 || buf[i+3]&0xF8 != 0xF8 {
			continue
		}
		v := (uint32(buf[i+1]&7)<<19 | uint32(buf[i])<<11 | uint32(buf[i+3]&7)<<8 | uint32(buf[i+2])) << 1
		pc := f.pos + uint32(i) + 4
		if f.encode {
			v += pc
		} else {
			v -= pc
		}
		v >>= 1
		buf[i+1] = 0xF0 | byte(v>>19)&7
		buf[i] = byte(v >> 11)
		buf[i+3] = 0xF8 | byte(v>>8)&7
		buf[i+2] = byte(v)
		i += 2
	}
	f.pos += uint32(i)
	return i
}

// arm64 is the ARM64 BCJ filter (id 0x0A, xz ≥ 5.4): BL immediates (26 bits, words) and ADRP immediates
// (21 bits, 4 KiB pages, only within ±512 MiB so that unrelated data is rarely touched) become absolute.
type arm64 struct {
	pos    uint32
	encode bool
}

func (f *arm64) convert(buf []byte) int {
	i := 0
	for ; i+4 <= len(buf); i += 4 {
		ins := binary.LittleEndian.Uint32(buf[i:])
		pc := f.pos + uint32(i)
		switch {
		case ins>>26 == 0x25: // BL
			d := pc >> 2
			if !f.encode {
				d = -d
			}
			ins = 0x94000000 | (ins+d)&0x03FFFFFF
			binary.LittleEndian.PutUint32(buf[i:], ins)
		case ins&0x9F000000 == 0x90000000: // ADRP
			imm := ins>>29&3 | ins>>3&0x001FFFFC
			if (imm+0x00020000)&0x001C0000 != 0 {
				continue // beyond ±512 MiB: left alone by the encoder too
			}
			d := pc >> 12
			if !f.encode {
				d = -d
			}
			imm += d
			ins &= 0x9000001F
			ins |= (imm & 3) << 29
			ins |= (imm & 0x0003FFFC) << 3
			ins |= -(imm & 0x00020000) & 0x00E00000
			binary.LittleEndian.PutUint32(buf[i:], ins)
		}
	}
	f.pos += uint32(i)
	return i
}

// delta is the Delta filter (id 0x03): each byte is stored as its difference from the byte dist positions
// earlier.
type delta struct {
	dist   int
	hist   [256]byte
	at     uint8
	encode bool
}

func (f *delta) convert(buf []byte) int {
	for i, b := range buf {
		prev := f.hist[uint8(int(f.at)+256-f.dist)]
		if f.encode {
			buf[i] = b - prev
			f.hist[f.at] = b
		} else {
			b += prev
			buf[i] = b
			f.hist[f.at] = b
		}
		f.at++
	}
	return len(buf)
}

// filterReader runs a converter over the bytes read from src.
type filterReader struct {
	src     io.Reader
	conv    converter
	buf     []byte
	r, done int // buf[r:done] is converted and not yet returned
	n       int // buf[done:n] is not converted yet
	eof     bool
	err     error
}

func newFilterReader(src io.Reader, c converter) *filterReader {
	return &filterReader{src: src, conv: c, buf: make([]byte, 64<<10)}
}

func (f *filterReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for f.r == f.done {
		if f.err != nil {
			return 0, f.err
		}
		if f.eof {
			if f.done < f.n { // the unconverted tail ends the data as it is
				f.done = f.n
				break
			}
			return 0, io.EOF
		}
		copy(f.buf, f.buf[f.done:f.n])
		f.n -= f.done
		f.r, f.done = 0, 0
		for f.n < len(f.buf) {
			m, err := f.src.Read(f.buf[f.n:])
			f.n += m
			if err == io.EOF {
				f.eof = true
				break
			}
			if err != nil {
				f.err = err
				return 0, err
			}
			if m == 0 {
				f.err = io.ErrNoProgress
				return 0, f.err
			}
		}
		f.done = f.conv.convert(f.buf[:f.n])
	}
	m := copy(p, f.buf[f.r:f.done])
	f.r += m
	return m, nil
}
