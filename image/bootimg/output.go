package bootimg

import (
	"errors"
	"io"
	"sort"
)

// Output is an image assembled by Build or Repack. It streams its parts from their sources rather
// than holding them in memory: write it with WriteTo, or read it at any offset (it is an image.Image).
// Close releases the files Repack opened.
type Output struct {
	Header *Header
	// Notes say what Repack changed or dropped beyond the edited parts (e.g. a stale AVB footer).
	Notes []string

	segs    []segment
	offs    []int64
	size    int64
	closers []io.Closer
}

type segment struct {
	b    []byte      // literal bytes, or
	r    io.ReaderAt // n bytes of r at off, or
	off  int64
	n    int64
	zero bool // n zero bytes
}

func (s *segment) len() int64 {
	if s.b != nil {
		return int64(len(s.b))
	}
	return s.n
}

func (o *Output) addBytes(b []byte) {
	if len(b) > 0 {
		o.add(segment{b: b})
	}
}

func (o *Output) addZeros(n int64) {
	if n > 0 {
		o.add(segment{zero: true, n: n})
	}
}

func (o *Output) addReader(r io.ReaderAt, off, n int64) {
	if n > 0 {
		o.add(segment{r: r, off: off, n: n})
	}
}

func (o *Output) add(s segment) {
	o.segs = append(o.segs, s)
	o.offs = append(o.offs, o.size)
	o.size += s.len()
}

// truncate drops the last n bytes (used to leave out padding an input image did not have).
func (o *Output) truncate(n int64) {
	for n > 0 && len(o.segs) > 0 {
		last := &o.segs[len(o.segs)-1]
		l := last.len()
		if l > n {
			if last.b != nil {
				last.b = last.b[:l-n]
			} else {
				last.n -= n
			}
			o.size -= n
			return
		}
		o.segs = o.segs[:len(o.segs)-1]
		o.offs = o.offs[:len(o.offs)-1]
		o.size -= l
		n -= l
	}
}

// Size is the size of the assembled image.
func (o *Output) Size() int64 { return o.size }

// ReadAt reads the assembled image at off.
func (o *Output) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("bootimg: negative offset")
	}
	if off >= o.size {
		return 0, io.EOF
	}
	i := sort.Search(len(o.offs), func(i int) bool { return o.offs[i] > off }) - 1
	n := 0
	for n < len(p) && i < len(o.segs) {
		s := &o.segs[i]
		rel := off + int64(n) - o.offs[i]
		m := min(int64(len(p)-n), s.len()-rel)
		dst := p[n : n+int(m)]
		switch {
		case s.b != nil:
			copy(dst, s.b[rel:])
		case s.zero:
			clear(dst)
		default:
			if _, err := s.r.ReadAt(dst, s.off+rel); err != nil && !(errors.Is(err, io.EOF) && m > 0) {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return n, err
			}
		}
		n += int(m)
		i++
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteTo writes the assembled image to w.
func (o *Output) WriteTo(w io.Writer) (int64, error) {
	var total int64
	var zeros []byte
	buf := make([]byte, 1<<20)
	for i := range o.segs {
		s := &o.segs[i]
		switch {
		case s.b != nil:
			n, err := w.Write(s.b)
			total += int64(n)
			if err != nil {
				return total, err
			}
		case s.zero:
			if zeros == nil {
				zeros = make([]byte, 64<<10)
			}
			for left := s.n; left > 0; {
				n, err := w.Write(zeros[:min(left, int64(len(zeros)))])
				total += int64(n)
				left -= int64(n)
				if err != nil {
					return total, err
				}
			}
		default:
			n, err := io.CopyBuffer(w, io.NewSectionReader(s.r, s.off, s.n), buf)
			total += n
			if err != nil {
				return total, err
			}
			if n != s.n {
				return total, io.ErrUnexpectedEOF
			}
		}
	}
	return total, nil
}

// Bytes returns the whole assembled image (for small images and tests).
func (o *Output) Bytes() ([]byte, error) {
	b := make([]byte, o.size)
	if _, err := o.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && o.size == 0) {
		return nil, err
	}
	return b, nil
}

// Close closes the files the output reads from.
func (o *Output) Close() error {
	var first error
	for _, c := range o.closers {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	o.closers = nil
	return first
}
