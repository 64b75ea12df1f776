package xzfilter

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"

	"github.com/ulikunitz/xz/lzma"

	"github.com/romforge/romforge/internal/failure"
)

// Filter IDs from the xz file format.
const (
	FilterDelta    = 0x03
	FilterX86      = 0x04
	FilterPowerPC  = 0x05
	FilterIA64     = 0x06
	FilterARM      = 0x07
	FilterARMThumb = 0x08
	FilterSPARC    = 0x09
	FilterARM64    = 0x0A
	FilterRISCV    = 0x0B
	FilterLZMA2    = 0x21
)

// Check types from the stream flags.
const (
	CheckNone   = 0x00
	CheckCRC32  = 0x01
	CheckCRC64  = 0x04
	CheckSHA256 = 0x0A
)

var (
	headerMagic = []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}
	footerMagic = []byte{'Y', 'Z'}
	crc64Table  = crc64.MakeTable(crc64.ECMA)
)

// FormatError reports a malformed or unsupported xz stream at a byte offset of the input.
type FormatError struct {
	Offset int64
	Msg    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("xzfilter: offset %d: %s", e.Offset, e.Msg)
}

// Unwrap makes every FormatError an invalid-input failure.
func (e *FormatError) Unwrap() error { return failure.ErrInvalid }

// ErrLimit reports a stream that decodes to more bytes than Config.Limit allows.
var ErrLimit = failure.Kinded(failure.ErrInvalid, errors.New("xzfilter: stream decodes to more bytes than allowed"))

// Config tunes a Reader; the zero value decodes any stream with its own dictionary size.
type Config struct {
	// Limit, when > 0, is the most bytes the stream may decode to; more fails with ErrLimit. The LZMA2
	// dictionary buffer is then never larger than Limit, which saves memory when many small streams are
	// decoded at once (payload operations of 2 MiB made with an 8-64 MiB dictionary).
	Limit int64
}

// NewReader returns a reader of the data in the complete .xz input r (one or more streams, each of one or
// more blocks). Checks are verified as each block ends; a damaged input fails with a *FormatError.
func NewReader(r io.Reader) (io.Reader, error) { return Config{}.NewReader(r) }

// NewReader is NewReader with c's settings.
func (c Config) NewReader(r io.Reader) (io.Reader, error) {
	d := &decoder{cfg: c, in: &countReader{r: bufio.NewReaderSize(r, 32<<10)}}
	if err := d.streamHeader(); err != nil {
		return nil, err
	}
	return d, nil
}

// countReader counts the bytes consumed from the input so errors and sizes can name offsets.
type countReader struct {
	r *bufio.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	m, err := c.r.Read(p)
	c.n += int64(m)
	return m, err
}

func (c *countReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

type record struct{ unpadded, uncompressed uint64 }

type decoder struct {
	cfg     Config
	in      *countReader
	flags   [2]byte // stream flags of the current stream
	check   byte
	records []record
	start   int64 // offset of the current stream's first block

	// current block
	blk      io.Reader // nil between blocks
	blkStart int64
	hdrSize  int64
	lzStart  int64
	comp     int64 // compressed size from the block header, or -1
	uncomp   int64 // uncompressed size from the block header, or -1
	produced int64
	total    int64 // bytes produced by all blocks so far
	sum      hash.Hash
	crc32    uint32
	crc64    uint64
	finished bool
	err      error
}

func (d *decoder) fail(off int64, format string, args ...any) error {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// readFull reads exactly len(p) bytes, turning a short input into a FormatError.
func (d *decoder) readFull(p []byte, what string) error {
	off := d.in.n
	if _, err := io.ReadFull(d.in, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return d.fail(off, "truncated %s", what)
		}
		return err
	}
	return nil
}

func (d *decoder) streamHeader() error {
	var h [12]byte
	if err := d.readFull(h[:], "stream header"); err != nil {
		return err
	}
	if !bytes.Equal(h[:6], headerMagic) {
		return d.fail(d.in.n-12, "not an xz stream (bad magic)")
	}
	if crc32.ChecksumIEEE(h[6:8]) != binary.LittleEndian.Uint32(h[8:]) {
		return d.fail(d.in.n-6, "stream header CRC32 mismatch")
	}
	if h[6] != 0 || h[7]&0xF0 != 0 {
		return d.fail(d.in.n-6, "unsupported stream flags %#02x%02x", h[6], h[7])
	}
	d.flags = [2]byte{h[6], h[7]}
	d.check = h[7] & 0x0F
	switch d.check {
	case CheckNone, CheckCRC32, CheckCRC64, CheckSHA256:
	default:
		return d.fail(d.in.n-6, "unsupported check type %#x", d.check)
	}
	d.records = d.records[:0]
	d.start = d.in.n
	return nil
}

func checkSize(c byte) int {
	switch c {
	case CheckCRC32:
		return 4
	case CheckCRC64:
		return 8
	case CheckSHA256:
		return 32
	}
	return 0
}

// uvarint reads an xz multibyte integer (at most 9 bytes, no redundant trailing zero byte).
func uvarint(p []byte) (uint64, int, bool) {
	var v uint64
	for i := 0; i < len(p) && i < 9; i++ {
		b := p[i]
		v |= uint64(b&0x7F) << (7 * i)
		if b&0x80 == 0 {
			if b == 0 && i > 0 {
				return 0, 0, false
			}
			return v, i + 1, true
		}
	}
	return 0, 0, false
}

func (d *decoder) readUvarint(what string) (uint64, error) {
	var v uint64
	off := d.in.n
	for i := 0; i < 9; i++ {
		b, err := d.in.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, d.fail(off, "truncated %s", what)
			}
			return 0, err
		}
		v |= uint64(b&0x7F) << (7 * i)
		if b&0x80 == 0 {
			if b == 0 && i > 0 {
				return 0, d.fail(off, "bad %s encoding", what)
			}
			return v, nil
		}
	}
	return 0, d.fail(off, "bad %s encoding", what)
}

// Read implements io.Reader.
func (d *decoder) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	for {
		if d.finished {
			return 0, io.EOF
		}
		if d.blk == nil {
			if err := d.next(); err != nil {
				d.err = err
				return 0, err
			}
			continue
		}
		if len(p) == 0 {
			return 0, nil
		}
		if d.cfg.Limit > 0 && d.total >= d.cfg.Limit {
			// Probe one byte: exactly Limit bytes is fine, one more is not.
			p = p[:1]
		}
		n, err := d.blk.Read(p)
		if n > 0 {
			if d.cfg.Limit > 0 && d.total+int64(n) > d.cfg.Limit {
				d.err = ErrLimit
				return 0, d.err
			}
			d.produced += int64(n)
			d.total += int64(n)
			if d.uncomp >= 0 && d.produced > d.uncomp {
				d.err = d.fail(d.blkStart, "block decodes to more than its declared %d bytes", d.uncomp)
				return 0, d.err
			}
			d.hashBytes(p[:n])
		}
		if err == io.EOF {
			if err := d.endBlock(); err != nil {
				d.err = err // the block's last bytes are not trustworthy either
				return 0, err
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil {
			d.err = d.wrapLZMA(err)
			return 0, d.err
		}
		return n, nil
	}
}

func (d *decoder) hashBytes(p []byte) {
	switch d.check {
	case CheckCRC32:
		d.crc32 = crc32.Update(d.crc32, crc32.IEEETable, p)
	case CheckCRC64:
		d.crc64 = crc64.Update(d.crc64, crc64Table, p)
	case CheckSHA256:
		d.sum.Write(p)
	}
}

func (d *decoder) wrapLZMA(err error) error {
	var fe *FormatError
	if errors.As(err, &fe) || errors.Is(err, failure.ErrInvalid) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return d.fail(d.in.n, "truncated LZMA2 data in block at %d", d.blkStart)
	}
	return d.fail(d.in.n, "block at %d: corrupt LZMA2 data: %v", d.blkStart, err)
}

// next reads what follows a block or a stream header: another block header, or the index and footer.
func (d *decoder) next() error {
	off := d.in.n
	b, err := d.in.ReadByte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return d.fail(off, "truncated stream (no index)")
		}
		return err
	}
	if b == 0 {
		return d.index(off)
	}
	return d.blockHeader(off, (int(b)+1)*4)
}

func (d *decoder) blockHeader(off int64, size int) error {
	h := make([]byte, size)
	h[0] = byte(size/4 - 1)
	if err := d.readFull(h[1:], "block header"); err != nil {
		return err
	}
	if crc32.ChecksumIEEE(h[:size-4]) != binary.LittleEndian.Uint32(h[size-4:]) {
		return d.fail(off, "block header CRC32 mismatch")
	}
	flags := h[1]
	if flags&0x3C != 0 {
		return d.fail(off, "unsupported block flags %#02x", flags)
	}
	nfilters := int(flags&3) + 1
	body := h[2 : size-4]
	d.comp, d.uncomp = -1, -1
	if flags&0x40 != 0 {
		v, n, ok := uvarint(body)
		if !ok || v == 0 || v > 1<<62 {
			return d.fail(off, "bad compressed size in block header")
		}
		d.comp, body = int64(v), body[n:]
	}
	if flags&0x80 != 0 {
		v, n, ok := uvarint(body)
		if !ok || v > 1<<62 {
			return d.fail(off, "bad uncompressed size in block header")
		}
		d.uncomp, body = int64(v), body[n:]
	}
	type filter struct {
		id    uint64
		props []byte
	}
	filters := make([]filter, 0, nfilters)
	for i := 0; i < nfilters; i++ {
		id, n, ok := uvarint(body)
		if !ok {
			return d.fail(off, "bad filter id in block header")
		}
		body = body[n:]
		psize, n, ok := uvarint(body)
		if !ok || psize > uint64(len(body)-n) {
			return d.fail(off, "bad filter properties size in block header")
		}
		filters = append(filters, filter{id, body[n : n+int(psize)]})
		body = body[n+int(psize):]
	}
	for _, b := range body {
		if b != 0 {
			return d.fail(off, "non-zero block header padding")
		}
	}
	last := filters[nfilters-1]
	if last.id != FilterLZMA2 || len(last.props) != 1 {
		return d.fail(off, "filter chain must end with LZMA2 (got filter %#x)", last.id)
	}
	dict, err := dictSize(last.props[0])
	if err != nil {
		return d.fail(off, "%v", err)
	}
	if d.cfg.Limit > 0 && d.cfg.Limit < dict {
		dict = d.cfg.Limit // no match can reach further back than the output's length
	}
	if d.uncomp >= 0 && d.uncomp < dict {
		dict = d.uncomp
	}
	dict = max(dict, lzma.MinDictCap)

	d.blkStart, d.hdrSize = off, int64(size)
	d.lzStart = d.in.n
	var src io.Reader = d.in
	if d.comp >= 0 {
		src = io.LimitReader(d.in, d.comp)
	}
	lz, err := lzma.Reader2Config{DictCap: int(dict)}.NewReader2(src)
	if err != nil {
		return d.wrapLZMA(err)
	}
	var out io.Reader = lz
	// Filters are listed in encoding order; decoding undoes them from the last non-LZMA2 one backwards.
	for i := nfilters - 2; i >= 0; i-- {
		f := filters[i]
		var c converter
		var start uint32
		switch f.id {
		case FilterX86, FilterARM, FilterARMThumb, FilterARM64:
			switch len(f.props) {
			case 0:
			case 4:
				start = binary.LittleEndian.Uint32(f.props)
			default:
				return d.fail(off, "bad BCJ filter properties")
			}
			align := map[uint64]uint32{FilterX86: 1, FilterARM: 4, FilterARMThumb: 2, FilterARM64: 4}[f.id]
			if start%align != 0 {
				return d.fail(off, "BCJ start offset %d not aligned", start)
			}
			switch f.id {
			case FilterX86:
				c = newX86(start, false)
			case FilterARM:
				c = &arm{pos: start}
			case FilterARMThumb:
				c = &armThumb{pos: start}
			case FilterARM64:
				c = &arm64{pos: start}
			}
		case FilterDelta:
			if len(f.props) != 1 {
				return d.fail(off, "bad Delta filter properties")
			}
			c = &delta{dist: int(f.props[0]) + 1}
		case FilterLZMA2:
			return d.fail(off, "LZMA2 filter not last in the chain")
		default:
			return d.fail(off, "unsupported filter %#x (supported: LZMA2, Delta, x86, ARM, ARM-Thumb, ARM64)", f.id)
		}
		out = newFilterReader(out, c)
	}
	d.blk = out
	d.produced = 0
	d.crc32, d.crc64 = 0, 0
	if d.check == CheckSHA256 {
		d.sum = sha256.New()
	}
	return nil
}

func dictSize(p byte) (int64, error) {
	if p > 40 {
		return 0, fmt.Errorf("bad LZMA2 dictionary size property %d", p)
	}
	if p == 40 {
		return 1<<32 - 1, nil
	}
	return int64(2|p&1) << (p/2 + 11), nil
}

func (d *decoder) endBlock() error {
	compressed := d.in.n - d.lzStart
	if d.comp >= 0 && compressed != d.comp {
		return d.fail(d.blkStart, "block compressed size %d, header says %d", compressed, d.comp)
	}
	if d.uncomp >= 0 && d.produced != d.uncomp {
		return d.fail(d.blkStart, "block decoded to %d bytes, header says %d", d.produced, d.uncomp)
	}
	if pad := (4 - compressed%4) % 4; pad > 0 {
		var z [3]byte
		if err := d.readFull(z[:pad], "block padding"); err != nil {
			return err
		}
		if z != [3]byte{} {
			return d.fail(d.in.n-pad, "non-zero block padding")
		}
	}
	cs := checkSize(d.check)
	var got [32]byte
	if err := d.readFull(got[:cs], "block check"); err != nil {
		return err
	}
	var want []byte
	switch d.check {
	case CheckCRC32:
		want = binary.LittleEndian.AppendUint32(nil, d.crc32)
	case CheckCRC64:
		want = binary.LittleEndian.AppendUint64(nil, d.crc64)
	case CheckSHA256:
		want = d.sum.Sum(nil)
	}
	if !bytes.Equal(got[:cs], want) {
		return d.fail(d.in.n-int64(cs), "block at %d: check mismatch (data corrupt)", d.blkStart)
	}
	if len(d.records) >= 1<<24 {
		return d.fail(d.blkStart, "too many blocks")
	}
	d.records = append(d.records, record{uint64(d.hdrSize + compressed + int64(cs)), uint64(d.produced)})
	d.blk = nil
	return nil
}

// index verifies the index against the blocks just decoded, then the stream footer, then looks for stream
// padding and a following stream.
func (d *decoder) index(off int64) error {
	crc := crc32.NewIEEE()
	crc.Write([]byte{0})
	tee := func(what string) (uint64, error) {
		var buf [10]byte
		v, err := d.readUvarint(what)
		if err != nil {
			return 0, err
		}
		n := binary.PutUvarint(buf[:], v) // minimal LEB128, the same bytes that were read
		crc.Write(buf[:n])
		return v, nil
	}
	count, err := tee("index record count")
	if err != nil {
		return err
	}
	if count != uint64(len(d.records)) {
		return d.fail(off, "index lists %d blocks, stream has %d", count, len(d.records))
	}
	for i := range d.records {
		u, err := tee("index record")
		if err != nil {
			return err
		}
		c, err := tee("index record")
		if err != nil {
			return err
		}
		if u != d.records[i].unpadded || c != d.records[i].uncompressed {
			return d.fail(off, "index record %d does not match block (%d/%d vs %d/%d)", i, u, c, d.records[i].unpadded, d.records[i].uncompressed)
		}
	}
	size := d.in.n - off
	if pad := (4 - size%4) % 4; pad > 0 {
		var z [3]byte
		if err := d.readFull(z[:pad], "index padding"); err != nil {
			return err
		}
		if z != [3]byte{} {
			return d.fail(d.in.n-pad, "non-zero index padding")
		}
		crc.Write(z[:pad])
	}
	var c [4]byte
	if err := d.readFull(c[:], "index CRC32"); err != nil {
		return err
	}
	if binary.LittleEndian.Uint32(c[:]) != crc.Sum32() {
		return d.fail(d.in.n-4, "index CRC32 mismatch")
	}
	indexSize := d.in.n - off
	var f [12]byte
	if err := d.readFull(f[:], "stream footer"); err != nil {
		return err
	}
	foff := d.in.n - 12
	if !bytes.Equal(f[10:], footerMagic) {
		return d.fail(foff, "bad stream footer magic")
	}
	if crc32.ChecksumIEEE(f[4:10]) != binary.LittleEndian.Uint32(f[:4]) {
		return d.fail(foff, "stream footer CRC32 mismatch")
	}
	if (int64(binary.LittleEndian.Uint32(f[4:]))+1)*4 != indexSize {
		return d.fail(foff, "stream footer backward size does not match the index")
	}
	if f[8] != d.flags[0] || f[9] != d.flags[1] {
		return d.fail(foff, "stream footer flags differ from the header")
	}
	// Stream padding (multiples of four zero bytes), then end of input or another stream.
	for {
		b, err := d.in.r.Peek(4)
		if len(b) == 0 && errors.Is(err, io.EOF) {
			d.finished = true
			return nil
		}
		if len(b) < 4 {
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			return d.fail(d.in.n, "truncated stream padding or trailing garbage")
		}
		if binary.LittleEndian.Uint32(b) != 0 {
			break
		}
		d.in.r.Discard(4)
		d.in.n += 4
	}
	return d.streamHeader()
}
