package cpio

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/pierrec/lz4/v4"

	"github.com/romforge/romforge/internal/failure"
)

// Compression names a ramdisk's compression.
type Compression string

const (
	None      Compression = "none"
	Gzip      Compression = "gzip"
	LZ4Legacy Compression = "lz4-legacy"
)

const (
	lz4LegacyMagic = 0x184C2102
	// lz4LegacyBlock is the uncompressed size of every block but the last in a legacy frame.
	lz4LegacyBlock = 8 << 20
)

// MaxRamdiskSize bounds how much a compressed ramdisk may expand to, so a hostile stream cannot
// exhaust memory. Android ramdisks are tens of MiB at most.
var MaxRamdiskSize int64 = 512 << 20

// Ramdisk is a possibly compressed cpio archive, as found in a boot or vendor_boot image.
type Ramdisk struct {
	Compression Compression
	*Archive

	orig     []byte
	trailing []byte // bytes after the compressed stream(s), kept as read
	gzHeader gzip.Header
	gzLevel  int
}

func invalid(format string, args ...any) error {
	return failure.Kinded(failure.ErrInvalid, fmt.Errorf("cpio: "+format, args...))
}

// Detect names the compression of a ramdisk from its first bytes. Formats that are recognised but not
// supported are named too, so the error can say which.
func Detect(head []byte) (Compression, error) {
	switch {
	case bytes.HasPrefix(head, []byte("07070")):
		return None, nil
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return Gzip, nil
	case len(head) >= 4 && binary.LittleEndian.Uint32(head) == lz4LegacyMagic:
		return LZ4Legacy, nil
	}
	other := map[string][]byte{
		"lz4 frame": {0x04, 0x22, 0x4d, 0x18}, "xz": {0xfd, '7', 'z', 'X', 'Z', 0},
		"zstd": {0x28, 0xb5, 0x2f, 0xfd}, "bzip2": []byte("BZh"), "lzma": {0x5d, 0, 0},
	}
	for name, m := range other {
		if bytes.HasPrefix(head, m) {
			return "", invalid("%s-compressed ramdisks are not supported (gzip, lz4 legacy and uncompressed are)", name)
		}
	}
	n := min(len(head), 8)
	return "", invalid("not a cpio ramdisk (starts % x)", head[:n])
}

// ParseRamdisk detects the compression of b, decompresses it and parses the archive. b must not be
// changed afterwards: unedited entries refer to it.
func ParseRamdisk(b []byte) (*Ramdisk, error) {
	c, err := Detect(b)
	if err != nil {
		return nil, err
	}
	r := &Ramdisk{Compression: c, orig: b}
	var plain []byte
	switch c {
	case None:
		plain = b
	case Gzip:
		plain, err = r.gunzip(b)
	case LZ4Legacy:
		plain, err = r.unlz4(b)
	}
	if err != nil {
		return nil, err
	}
	if r.Archive, err = Parse(plain); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Ramdisk) gunzip(b []byte) ([]byte, error) {
	br := bytes.NewReader(b)
	var out bytes.Buffer
	for member := 0; br.Len() > 0; member++ {
		if member > 0 {
			rest := b[len(b)-br.Len():]
			if !bytes.HasPrefix(rest, []byte{0x1f, 0x8b}) {
				r.trailing = rest
				break
			}
		}
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, invalid("gzip member %d: %v", member, err)
		}
		zr.Multistream(false)
		if member == 0 {
			r.gzHeader = zr.Header
			switch b[8] { // XFL: 2 = slowest, 4 = fastest
			case 2:
				r.gzLevel = gzip.BestCompression
			case 4:
				r.gzLevel = gzip.BestSpeed
			default:
				r.gzLevel = gzip.DefaultCompression
			}
		}
		limit := MaxRamdiskSize - int64(out.Len())
		n, err := io.Copy(&out, io.LimitReader(zr, limit+1))
		if err != nil {
			return nil, invalid("gzip member %d: %v", member, err)
		}
		if n > limit {
			return nil, invalid("ramdisk expands beyond %d bytes", MaxRamdiskSize)
		}
	}
	return out.Bytes(), nil
}

func (r *Ramdisk) unlz4(b []byte) ([]byte, error) {
	var out []byte
	off := 4
	for off < len(b) {
		if len(b)-off < 4 {
			r.trailing = b[off:]
			break
		}
		n := binary.LittleEndian.Uint32(b[off:])
		if n == lz4LegacyMagic { // a concatenated stream starts
			off += 4
			continue
		}
		if int64(n) > int64(len(b)-off-4) {
			if len(b)-off == 4 {
				// The kernel build appends the uncompressed size after a legacy stream; keep it.
				r.trailing = b[off:]
				break
			}
			return nil, invalid("lz4 block at offset %d claims %d bytes, %d remain", off, n, len(b)-off-4)
		}
		src := b[off+4 : off+4+int(n)]
		// A block expands to at most 8 MiB, and LZ4 cannot expand more than about 255-fold.
		dst := make([]byte, min(lz4LegacyBlock, 255*len(src)+16))
		m, err := lz4.UncompressBlock(src, dst)
		if err != nil {
			return nil, invalid("lz4 block at offset %d: %v", off, err)
		}
		if int64(len(out)+m) > MaxRamdiskSize {
			return nil, invalid("ramdisk expands beyond %d bytes", MaxRamdiskSize)
		}
		out = append(out, dst[:m]...)
		off += 4 + int(n)
	}
	return out, nil
}

// Bytes returns the ramdisk in its original compression: the original bytes when nothing was edited,
// otherwise the edited archive re-compressed (gzip with the original header fields and level; lz4
// legacy in 8 MiB high-compression blocks). Bytes after the compressed stream are kept.
func (r *Ramdisk) Bytes() ([]byte, error) {
	if !r.Modified() && r.orig != nil {
		return r.orig, nil
	}
	plain := r.Archive.Bytes()
	switch r.Compression {
	case None:
		return plain, nil
	case Gzip:
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, r.gzLevel)
		if err != nil {
			return nil, err
		}
		zw.Header = r.gzHeader
		if _, err := zw.Write(plain); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		return append(buf.Bytes(), r.trailing...), nil
	case LZ4Legacy:
		out, err := CompressLZ4Legacy(plain)
		if err != nil {
			return nil, err
		}
		return append(out, r.trailing...), nil
	}
	return nil, errors.New("cpio: unknown compression " + string(r.Compression))
}

// CompressLZ4Legacy writes data as an lz4 legacy frame (what `lz4 -l` writes and the kernel reads).
func CompressLZ4Legacy(data []byte) ([]byte, error) {
	out := binary.LittleEndian.AppendUint32(nil, lz4LegacyMagic)
	var c lz4.CompressorHC
	c.Level = lz4.Level9
	dst := make([]byte, lz4.CompressBlockBound(lz4LegacyBlock))
	for len(data) > 0 {
		chunk := data[:min(len(data), lz4LegacyBlock)]
		data = data[len(chunk):]
		// With a CompressBlockBound-sized destination, compression always succeeds.
		n, err := c.CompressBlock(chunk, dst)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("cpio: lz4 compression of %d bytes failed: %v", len(chunk), err)
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(n))
		out = append(out, dst[:n]...)
	}
	return out, nil
}
