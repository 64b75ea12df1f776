package erofs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/internal/safeio"
)

// data reads one inode's contents, whatever its layout.
type data struct {
	f    *FS
	in   *inode
	name string

	// flat layouts
	blkaddr  int64 // byte offset of the first data block
	nblocks  int64 // blocks stored at blkaddr
	tailOff  int64 // byte offset of inline tail data, -1 if none
	tailSize int64

	// chunk-based
	chunkBits  uint
	chunkUnit  int64
	chunkIndex int64

	z *zmap

	mu    sync.Mutex
	cache [2]extentBuf
	lru   int
}

type extentBuf struct {
	la  int64
	buf []byte
}

func newData(f *FS, in *inode, name string) (*data, error) {
	d := &data{f: f, in: in, name: name, tailOff: -1}
	if in.size == 0 {
		return d, nil
	}
	bs := f.blksz
	nblk := (in.size + bs - 1) / bs
	switch in.layout {
	case layoutFlatPlain, layoutFlatInline:
		d.blkaddr = int64(in.u) << f.blkbits
		d.nblocks = nblk
		if in.layout == layoutFlatInline {
			d.nblocks--
			d.tailOff = in.dataEnd()
			d.tailSize = in.size - d.nblocks*bs
			if (d.tailOff&(bs-1))+d.tailSize > bs {
				return nil, errAt(in.off, "inode %d: inline tail of %d bytes crosses a block", in.nid, d.tailSize)
			}
			if err := safeio.CheckRange(d.tailOff, d.tailSize, f.size); err != nil {
				return nil, errAt(in.off, "inode %d: inline data outside the image", in.nid)
			}
		}
		if d.nblocks > 0 {
			n := d.nblocks * bs
			if d.tailOff < 0 {
				n = in.size
			}
			if err := safeio.CheckRange(d.blkaddr, n, f.size); err != nil {
				return nil, errAt(in.off, "inode %d: data blocks %d+%d outside the image", in.nid, in.u, d.nblocks)
			}
		}
	case layoutChunkBased:
		bits := uint(in.u & chunkFormatBlkbits)
		if f.blkbits+bits > 40 {
			return nil, errAt(in.off, "inode %d: chunk size 2^%d", in.nid, f.blkbits+bits)
		}
		d.chunkBits = f.blkbits + bits
		d.chunkUnit = 4
		if in.u&chunkFormatIndexes != 0 {
			d.chunkUnit = 8
		}
		d.chunkIndex = (in.dataEnd() + d.chunkUnit - 1) &^ (d.chunkUnit - 1)
		n := (in.size + 1<<d.chunkBits - 1) >> d.chunkBits
		if err := safeio.CheckRange(d.chunkIndex, n*d.chunkUnit, f.size); err != nil {
			return nil, errAt(in.off, "inode %d: %d chunk indexes outside the image", in.nid, n)
		}
	case layoutCompressFull, layoutCompressComp:
		z, err := newZmap(f, in)
		if err != nil {
			return nil, err
		}
		d.z = z
	default:
		return nil, errAt(in.off, "inode %d: unknown data layout %d", in.nid, in.layout)
	}
	return d, nil
}

// ReadAt reads file contents; reads past the end return io.EOF.
func (d *data) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("erofs: negative offset")
	}
	if off >= d.in.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := p
	if rem := d.in.size - off; int64(len(p)) > rem {
		p = p[:rem]
	}
	n := 0
	for len(p) > 0 {
		m, err := d.readSome(p, off)
		n += m
		if err != nil {
			return n, err
		}
		p = p[m:]
		off += int64(m)
	}
	if n < len(want) {
		return n, io.EOF
	}
	return n, nil
}

func (d *data) readImage(p []byte, off int64) error {
	if err := safeio.CheckRange(off, int64(len(p)), d.f.size); err != nil {
		return errAt(d.in.off, "inode %d: data outside the image: %v", d.in.nid, err)
	}
	if _, err := d.f.img.ReadAt(p, off); err != nil && !(errors.Is(err, io.EOF)) {
		return fmt.Errorf("erofs: %w", err)
	}
	return nil
}

// readSome reads from off into p, stopping at the end of one mapped piece.
func (d *data) readSome(p []byte, off int64) (int, error) {
	bs := d.f.blksz
	switch {
	case d.z != nil:
		return d.readCompressed(p, off)
	case d.chunkUnit != 0:
		idx := off >> d.chunkBits
		in := off & (1<<d.chunkBits - 1)
		n := min(int64(len(p)), 1<<d.chunkBits-in)
		e, err := d.f.readMeta(d.chunkIndex+idx*d.chunkUnit, d.chunkUnit)
		if err != nil {
			return 0, err
		}
		var addr uint32
		if d.chunkUnit == 8 {
			if dev := binary.LittleEndian.Uint16(e[2:]); dev != 0 {
				return 0, errAt(d.in.off, "inode %d: chunk on extra device %d is not supported", d.in.nid, dev)
			}
			addr = binary.LittleEndian.Uint32(e[4:])
		} else {
			addr = binary.LittleEndian.Uint32(e)
		}
		if addr == nullAddr {
			clear(p[:n])
			return int(n), nil
		}
		return int(n), d.readImage(p[:n], int64(addr)<<d.f.blkbits+in)
	default:
		if d.tailOff >= 0 && off >= d.nblocks*bs {
			rel := off - d.nblocks*bs
			m := min(int64(len(p)), d.tailSize-rel)
			return int(m), d.readImage(p[:m], d.tailOff+rel)
		}
		end := d.in.size
		if d.tailOff >= 0 {
			end = d.nblocks * bs
		}
		m := min(int64(len(p)), end-off)
		return int(m), d.readImage(p[:m], d.blkaddr+off)
	}
}

func (d *data) readCompressed(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.cache {
		if c.buf != nil && off >= c.la && off < c.la+int64(len(c.buf)) {
			return copy(p, c.buf[off-c.la:]), nil
		}
	}
	ext, err := d.z.mapOffset(off)
	if err != nil {
		return 0, d.wrap(err)
	}
	buf, err := d.z.decompress(ext, d.cache[d.lru].buf)
	if err != nil {
		return 0, d.wrap(err)
	}
	d.cache[d.lru] = extentBuf{la: ext.la, buf: buf}
	d.lru ^= 1
	if off < ext.la || off >= ext.la+int64(len(buf)) {
		return 0, errAt(d.in.off, "inode %d: extent map does not cover offset %d", d.in.nid, off)
	}
	return copy(p, buf[off-ext.la:]), nil
}

func (d *data) wrap(err error) error {
	if d.name != "" {
		return fmt.Errorf("%s: %w", d.name, err)
	}
	return err
}

// File is an open regular file (or other non-directory). It implements io.ReaderAt and io.Seeker.
type File struct {
	f    *FS
	name string
	in   *inode
	d    *data
	pos  int64
}

// Stat implements fs.File.
func (fl *File) Stat() (fs.FileInfo, error) { return fl.f.info(fl.name, fl.in) }

// Read implements io.Reader.
func (fl *File) Read(p []byte) (int, error) {
	if fl.d == nil || fl.pos >= fl.in.size {
		return 0, io.EOF
	}
	n, err := fl.d.ReadAt(p, fl.pos)
	fl.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt implements io.ReaderAt.
func (fl *File) ReadAt(p []byte, off int64) (int, error) {
	if fl.d == nil {
		return 0, io.EOF
	}
	return fl.d.ReadAt(p, off)
}

// Seek implements io.Seeker.
func (fl *File) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += fl.pos
	case io.SeekEnd:
		off += fl.in.size
	default:
		return 0, errors.New("erofs: bad whence")
	}
	if off < 0 {
		return 0, errors.New("erofs: negative position")
	}
	fl.pos = off
	return off, nil
}

// Close implements fs.File.
func (fl *File) Close() error { return nil }

type dirFile struct {
	f    *FS
	name string
	in   *inode
	ents []fs.DirEntry
	read bool
	pos  int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.f.info(d.name, d.in) }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}
func (d *dirFile) Close() error { return nil }
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		ents, err := d.f.dirEntries("readdir", d.name, &resolved{name: d.name, in: d.in})
		if err != nil {
			return nil, err
		}
		d.ents, d.read = ents, true
	}
	rest := d.ents[d.pos:]
	if n <= 0 {
		d.pos = len(d.ents)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.pos += n
	return rest[:n], nil
}

// Open implements fs.FS. Symlinks inside the image are followed; regular files are *File.
func (f *FS) Open(name string) (fs.File, error) {
	r, err := f.lookup("open", name, true)
	if err != nil {
		return nil, err
	}
	if r.in.isDir() {
		return &dirFile{f: f, name: name, in: r.in}, nil
	}
	fl := &File{f: f, name: name, in: r.in}
	if r.in.isReg() {
		d, err := newData(f, r.in, name)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		fl.d = d
	}
	return fl, nil
}

var (
	_ tree.Tree     = (*FS)(nil)
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
	_ fs.ReadLinkFS = (*FS)(nil)
	_ io.ReaderAt   = (*File)(nil)
	_ io.Seeker     = (*File)(nil)
)
