package axml

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Encode writes root as binary XML with a UTF-16 string pool, as aapt2 does for manifests. Attribute
// values that parse as integers or booleans are written typed (the raw string is kept too); attributes
// with a Resource id get a resource map entry. It exists for tests and fixture generation.
func Encode(root *Element) []byte {
	e := &encoder{index: map[string]uint32{}}
	// Attribute names with resource ids must come first in the pool: the resource map is indexed by them.
	var walk func(*Element)
	var resNames []Attr
	walk = func(el *Element) {
		for _, a := range el.Attrs {
			if a.Resource != 0 {
				resNames = append(resNames, a)
			}
		}
		for _, c := range el.Children {
			walk(c)
		}
	}
	walk(root)
	var resMap []uint32
	for _, a := range resNames {
		if _, ok := e.index[a.Name]; !ok {
			e.intern(a.Name)
			resMap = append(resMap, a.Resource)
		}
	}
	var body bytes.Buffer
	nsUsed := false
	var mark func(*Element)
	mark = func(el *Element) {
		for _, a := range el.Attrs {
			if a.Namespace == AndroidNS {
				nsUsed = true
			}
		}
		for _, c := range el.Children {
			mark(c)
		}
	}
	mark(root)
	if nsUsed {
		e.node(&body, typeStartNS, e.intern("android"), e.intern(AndroidNS))
	}
	e.element(&body, root)
	if nsUsed {
		e.node(&body, typeEndNS, e.intern("android"), e.intern(AndroidNS))
	}
	var out bytes.Buffer
	pool := e.pool()
	var rm []byte
	if len(resMap) > 0 {
		rm = make([]byte, 8+4*len(resMap))
		binary.LittleEndian.PutUint16(rm, typeResourceMap)
		binary.LittleEndian.PutUint16(rm[2:], 8)
		binary.LittleEndian.PutUint32(rm[4:], uint32(len(rm)))
		for i, id := range resMap {
			binary.LittleEndian.PutUint32(rm[8+4*i:], id)
		}
	}
	total := 8 + len(pool) + len(rm) + body.Len()
	hdr := make([]byte, 8)
	binary.LittleEndian.PutUint16(hdr, typeXML)
	binary.LittleEndian.PutUint16(hdr[2:], 8)
	binary.LittleEndian.PutUint32(hdr[4:], uint32(total))
	out.Write(hdr)
	out.Write(pool)
	out.Write(rm)
	out.Write(body.Bytes())
	return out.Bytes()
}

type encoder struct {
	strs  []string
	index map[string]uint32
}

func (e *encoder) intern(s string) uint32 {
	if i, ok := e.index[s]; ok {
		return i
	}
	i := uint32(len(e.strs))
	e.strs = append(e.strs, s)
	e.index[s] = i
	return i
}

func (e *encoder) ref(s string) uint32 {
	if s == "" {
		return noIndex
	}
	return e.intern(s)
}

func (e *encoder) node(w *bytes.Buffer, typ uint16, a, b uint32) {
	h := make([]byte, 24)
	binary.LittleEndian.PutUint16(h, typ)
	binary.LittleEndian.PutUint16(h[2:], nodeHeaderSize)
	binary.LittleEndian.PutUint32(h[4:], 24)
	binary.LittleEndian.PutUint32(h[8:], 1)
	binary.LittleEndian.PutUint32(h[12:], noIndex)
	binary.LittleEndian.PutUint32(h[16:], a)
	binary.LittleEndian.PutUint32(h[20:], b)
	w.Write(h)
}

func (e *encoder) element(w *bytes.Buffer, el *Element) {
	size := nodeHeaderSize + 20 + attrSize*len(el.Attrs)
	h := make([]byte, size)
	binary.LittleEndian.PutUint16(h, typeStartElement)
	binary.LittleEndian.PutUint16(h[2:], nodeHeaderSize)
	binary.LittleEndian.PutUint32(h[4:], uint32(size))
	binary.LittleEndian.PutUint32(h[8:], 1)
	binary.LittleEndian.PutUint32(h[12:], noIndex)
	x := h[nodeHeaderSize:]
	binary.LittleEndian.PutUint32(x, e.ref(el.Namespace))
	binary.LittleEndian.PutUint32(x[4:], e.intern(el.Name))
	binary.LittleEndian.PutUint16(x[8:], 20)
	binary.LittleEndian.PutUint16(x[10:], attrSize)
	binary.LittleEndian.PutUint16(x[12:], uint16(len(el.Attrs)))
	for i, a := range el.Attrs {
		b := x[20+i*attrSize:]
		binary.LittleEndian.PutUint32(b, e.ref(a.Namespace))
		binary.LittleEndian.PutUint32(b[4:], e.intern(a.Name))
		typ, data := TypeString, uint32(0)
		raw := e.intern(a.Value)
		switch {
		case a.Type != 0:
			typ, data = int(a.Type), a.Data
		case a.Value == "true" || a.Value == "false":
			typ = TypeBool
			if a.Value == "true" {
				data = 0xffffffff
			}
		default:
			if n, err := strconv.ParseInt(a.Value, 10, 32); err == nil && !strings.HasPrefix(a.Value, "+") {
				typ, data = TypeIntDec, uint32(int32(n))
			} else {
				data = raw
			}
		}
		if typ == TypeString {
			binary.LittleEndian.PutUint32(b[8:], raw)
		} else {
			binary.LittleEndian.PutUint32(b[8:], noIndex)
		}
		binary.LittleEndian.PutUint16(b[12:], 8)
		b[15] = byte(typ)
		binary.LittleEndian.PutUint32(b[16:], data)
	}
	w.Write(h)
	for _, c := range el.Children {
		e.element(w, c)
	}
	e.node(w, typeEndElement, e.ref(el.Namespace), e.intern(el.Name))
}

func (e *encoder) pool() []byte {
	var data bytes.Buffer
	offs := make([]uint32, len(e.strs))
	for i, s := range e.strs {
		offs[i] = uint32(data.Len())
		u := utf16.Encode([]rune(s))
		var l [2]byte
		binary.LittleEndian.PutUint16(l[:], uint16(len(u)))
		data.Write(l[:])
		for _, c := range u {
			binary.LittleEndian.PutUint16(l[:], c)
			data.Write(l[:])
		}
		data.Write([]byte{0, 0})
	}
	for data.Len()%4 != 0 {
		data.WriteByte(0)
	}
	start := stringPoolHdrSize + 4*len(e.strs)
	b := make([]byte, start, start+data.Len())
	binary.LittleEndian.PutUint16(b, typeStringPool)
	binary.LittleEndian.PutUint16(b[2:], stringPoolHdrSize)
	binary.LittleEndian.PutUint32(b[4:], uint32(start+data.Len()))
	binary.LittleEndian.PutUint32(b[8:], uint32(len(e.strs)))
	binary.LittleEndian.PutUint32(b[20:], uint32(start))
	for i, o := range offs {
		binary.LittleEndian.PutUint32(b[stringPoolHdrSize+4*i:], o)
	}
	return append(b, data.Bytes()...)
}
