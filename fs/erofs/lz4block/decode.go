package lz4block

import "errors"

// ErrCorrupt reports an LZ4 block that cannot be decoded.
var ErrCorrupt = errors.New("lz4block: corrupt block")

// Decompress decodes the LZ4 block src into dst and returns the number of bytes written. Decoding stops as
// soon as dst is full (bytes of src after that point are ignored), or when src ends. A match reaching before
// the start of dst, or a sequence running past the end of src, is an error.
func Decompress(src, dst []byte) (int, error) {
	si, di := 0, 0
	for si < len(src) {
		token := src[si]
		si++
		lit := int(token >> 4)
		if lit == 15 {
			for {
				if si >= len(src) {
					return di, ErrCorrupt
				}
				b := src[si]
				si++
				lit += int(b)
				if lit > len(src) { // cannot be satisfied; also stops overflow
					return di, ErrCorrupt
				}
				if b != 255 {
					break
				}
			}
		}
		if lit > 0 {
			if si+lit > len(src) {
				return di, ErrCorrupt
			}
			n := copy(dst[di:], src[si:si+lit])
			di += n
			si += lit
			if di == len(dst) {
				return di, nil
			}
		}
		if si == len(src) {
			return di, nil // last sequence: literals only
		}
		if si+2 > len(src) {
			return di, ErrCorrupt
		}
		off := int(src[si]) | int(src[si+1])<<8
		si += 2
		if off == 0 || off > di {
			return di, ErrCorrupt
		}
		ml := int(token & 15)
		if ml == 15 {
			for {
				if si >= len(src) {
					return di, ErrCorrupt
				}
				b := src[si]
				si++
				ml += int(b)
				if ml > 1<<30 {
					return di, ErrCorrupt
				}
				if b != 255 {
					break
				}
			}
		}
		ml += 4
		if rem := len(dst) - di; ml > rem {
			ml = rem
		}
		ref := di - off
		if off >= ml {
			copy(dst[di:di+ml], dst[ref:ref+ml])
		} else {
			// Overlapping copy: repeat the pattern, doubling the copied span each round.
			end := di + ml
			for di < end {
				n := copy(dst[di:end], dst[ref:di])
				di += n
			}
			di = end
			if di == len(dst) {
				return di, nil
			}
			continue
		}
		di += ml
		if di == len(dst) {
			return di, nil
		}
	}
	return di, nil
}
