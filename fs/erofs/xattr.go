package erofs

import (
	"encoding/binary"
	"sort"
)

// xattrs decodes an inode's shared and inline extended attributes.
func (f *FS) xattrs(in *inode) (map[string][]byte, error) {
	if in.xsize == 0 {
		return nil, nil
	}
	if in.xsize < 12 {
		return nil, errAt(in.off, "inode %d: xattr area of %d bytes", in.nid, in.xsize)
	}
	body, err := f.readMeta(in.off+in.isize, in.xsize)
	if err != nil {
		return nil, err
	}
	shared := int64(body[4])
	if 12+4*shared > in.xsize {
		return nil, errAt(in.off, "inode %d: %d shared xattrs do not fit in %d bytes", in.nid, shared, in.xsize)
	}
	out := map[string][]byte{}
	for i := int64(0); i < shared; i++ {
		id := int64(binary.LittleEndian.Uint32(body[12+4*i:]))
		pos := int64(f.sb.xattrBlkaddr)<<f.blkbits + id*4
		hdr, err := f.readMeta(pos, 4)
		if err != nil {
			return nil, err
		}
		nlen, vlen := int64(hdr[0]), int64(binary.LittleEndian.Uint16(hdr[2:]))
		rest, err := f.readMeta(pos+4, nlen+vlen)
		if err != nil {
			return nil, err
		}
		name, err := f.xattrName(hdr[1], rest[:nlen], pos)
		if err != nil {
			return nil, err
		}
		out[name] = rest[nlen:]
	}
	p := 12 + 4*shared
	for p+4 <= in.xsize {
		e := body[p:]
		nlen, vlen := int64(e[0]), int64(binary.LittleEndian.Uint16(e[2:]))
		if e[0] == 0 && e[1] == 0 && vlen == 0 {
			break // padding
		}
		if p+4+nlen+vlen > in.xsize {
			return nil, errAt(in.off+in.isize+p, "inode %d: xattr entry runs past the xattr area", in.nid)
		}
		name, err := f.xattrName(e[1], e[4:4+nlen], in.off+in.isize+p)
		if err != nil {
			return nil, err
		}
		out[name] = append([]byte(nil), e[4+nlen:4+nlen+vlen]...)
		p += (4 + nlen + vlen + 3) &^ 3
	}
	return out, nil
}

func (f *FS) xattrName(index uint8, suffix []byte, pos int64) (string, error) {
	if index&0x80 != 0 {
		i := int(index & 0x7f)
		if i >= len(f.prefixes) {
			return "", errAt(pos, "xattr long prefix %d of %d", i, len(f.prefixes))
		}
		lp := f.prefixes[i]
		return xattrPrefixes[lp.base] + lp.infix + string(suffix), nil
	}
	p, ok := xattrPrefixes[index]
	if !ok {
		return "", errAt(pos, "unknown xattr name index %d", index)
	}
	return p + string(suffix), nil
}

func sortEntries[T interface{ Name() string }](s []T) {
	sort.Slice(s, func(i, j int) bool { return s[i].Name() < s[j].Name() })
}
