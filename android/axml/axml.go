// Package axml reads and writes Android binary XML (the compiled AndroidManifest.xml inside APKs): a
// string pool, an optional resource-id map, and a stream of namespace/element/text nodes. The reader
// bounds every count and offset by the chunk that holds it, so hostile files fail with a FormatError.
package axml

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"

	"github.com/romforge/romforge/internal/failure"
)

// Chunk types (ResourceTypes.h).
const (
	typeStringPool    = 0x0001
	typeXML           = 0x0003
	typeStartNS       = 0x0100
	typeEndNS         = 0x0101
	typeStartElement  = 0x0102
	typeEndElement    = 0x0103
	typeCDATA         = 0x0104
	typeResourceMap   = 0x0180
	flagUTF8          = 0x100
	noIndex           = 0xffffffff
	maxDepth          = 256
	attrSize          = 20
	nodeHeaderSize    = 16
	stringPoolHdrSize = 28
)

// Value types (Res_value.dataType).
const (
	TypeNull      = 0x00
	TypeReference = 0x01
	TypeString    = 0x03
	TypeFloat     = 0x04
	TypeIntDec    = 0x10
	TypeIntHex    = 0x11
	TypeBool      = 0x12
)

// AndroidNS is the android: namespace URI.
const AndroidNS = "http://schemas.android.com/apk/res/android"

// FormatError reports malformed binary XML at an offset.
type FormatError struct {
	Off int64
	Msg string
}

func (e *FormatError) Error() string { return fmt.Sprintf("axml: %s at offset %d", e.Msg, e.Off) }

// Unwrap classifies the error as invalid input.
func (e *FormatError) Unwrap() error { return failure.ErrInvalid }

func errAt(off int, f string, a ...any) error {
	return &FormatError{Off: int64(off), Msg: fmt.Sprintf(f, a...)}
}

// Attr is one attribute.
type Attr struct {
	Namespace string
	Name      string
	// Value is the attribute as text: the raw string when present, else the typed value formatted.
	Value string
	Type  uint8
	Data  uint32
	// Resource is the attribute's resource id from the resource map (0 when absent).
	Resource uint32
}

// Element is one XML element.
type Element struct {
	Namespace string
	Name      string
	Attrs     []Attr
	Children  []*Element
	Text      string
}

// Attr returns the value of the attribute called name in namespace ns ("" matches any namespace).
func (e *Element) Attr(ns, name string) (string, bool) {
	for _, a := range e.Attrs {
		if a.Name == name && (ns == "" || a.Namespace == ns) {
			return a.Value, true
		}
	}
	return "", false
}

// Find returns the first direct child called name.
func (e *Element) Find(name string) *Element {
	for _, c := range e.Children {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Decode parses a binary XML document and returns its root element.
func Decode(b []byte) (*Element, error) {
	if len(b) < 8 {
		return nil, errAt(0, "file too short (%d bytes)", len(b))
	}
	typ, hdr, size := binary.LittleEndian.Uint16(b), int(binary.LittleEndian.Uint16(b[2:])), binary.LittleEndian.Uint32(b[4:])
	if typ != typeXML {
		return nil, errAt(0, "not binary XML (chunk type %#x)", typ)
	}
	if hdr < 8 || uint64(size) > uint64(len(b)) || int(size) < hdr {
		return nil, errAt(0, "bad document header (header %d, size %d, file %d)", hdr, size, len(b))
	}
	b = b[:size]
	var (
		pool   []string
		resMap []uint32
		root   *Element
		stack  []*Element
	)
	str := func(i uint32, off int) (string, error) {
		if i == noIndex {
			return "", nil
		}
		if uint64(i) >= uint64(len(pool)) {
			return "", errAt(off, "string index %d out of range (%d strings)", i, len(pool))
		}
		return pool[i], nil
	}
	for off := hdr; off < len(b); {
		if len(b)-off < 8 {
			return nil, errAt(off, "truncated chunk header")
		}
		ctyp := binary.LittleEndian.Uint16(b[off:])
		chdr := int(binary.LittleEndian.Uint16(b[off+2:]))
		csize := int(binary.LittleEndian.Uint32(b[off+4:]))
		if chdr < 8 || csize < chdr || csize > len(b)-off {
			return nil, errAt(off, "bad chunk (type %#x header %d size %d)", ctyp, chdr, csize)
		}
		c := b[off : off+csize]
		switch ctyp {
		case typeStringPool:
			p, err := decodePool(c, off)
			if err != nil {
				return nil, err
			}
			pool = p
		case typeResourceMap:
			n := (csize - chdr) / 4
			resMap = make([]uint32, n)
			for i := range resMap {
				resMap[i] = binary.LittleEndian.Uint32(c[chdr+4*i:])
			}
		case typeStartNS, typeEndNS:
			// Namespace prefixes are not needed: attributes carry their namespace URI.
		case typeStartElement:
			if chdr < nodeHeaderSize || csize < chdr+20 {
				return nil, errAt(off, "start element too short")
			}
			x := c[chdr:]
			ns, err := str(binary.LittleEndian.Uint32(x), off)
			if err != nil {
				return nil, err
			}
			name, err := str(binary.LittleEndian.Uint32(x[4:]), off)
			if err != nil {
				return nil, err
			}
			aStart := int(binary.LittleEndian.Uint16(x[8:]))
			aSize := int(binary.LittleEndian.Uint16(x[10:]))
			aCount := int(binary.LittleEndian.Uint16(x[12:]))
			if aSize < attrSize || aStart+aCount*aSize > len(x) {
				return nil, errAt(off, "attributes overrun the element (%d × %d from %d)", aCount, aSize, aStart)
			}
			el := &Element{Namespace: ns, Name: name}
			for i := 0; i < aCount; i++ {
				a := x[aStart+i*aSize:]
				var at Attr
				nameIdx := binary.LittleEndian.Uint32(a[4:])
				if at.Namespace, err = str(binary.LittleEndian.Uint32(a), off); err != nil {
					return nil, err
				}
				if at.Name, err = str(nameIdx, off); err != nil {
					return nil, err
				}
				if uint64(nameIdx) < uint64(len(resMap)) {
					at.Resource = resMap[nameIdx]
				}
				raw := binary.LittleEndian.Uint32(a[8:])
				at.Type, at.Data = a[15], binary.LittleEndian.Uint32(a[16:])
				if raw != noIndex {
					if at.Value, err = str(raw, off); err != nil {
						return nil, err
					}
				} else if at.Type == TypeString {
					if at.Value, err = str(at.Data, off); err != nil {
						return nil, err
					}
				} else {
					at.Value = formatValue(at.Type, at.Data)
				}
				el.Attrs = append(el.Attrs, at)
			}
			if len(stack) == 0 {
				if root != nil {
					return nil, errAt(off, "second root element %q", name)
				}
				root = el
			} else {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, el)
			}
			if len(stack) >= maxDepth {
				return nil, errAt(off, "elements nested deeper than %d", maxDepth)
			}
			stack = append(stack, el)
		case typeEndElement:
			if len(stack) == 0 {
				return nil, errAt(off, "end element without start")
			}
			stack = stack[:len(stack)-1]
		case typeCDATA:
			if len(stack) > 0 && csize >= chdr+4 {
				t, err := str(binary.LittleEndian.Uint32(c[chdr:]), off)
				if err != nil {
					return nil, err
				}
				stack[len(stack)-1].Text += t
			}
		default:
			// Unknown chunks are skipped, as Android's parser does.
		}
		off += csize
	}
	if root == nil {
		return nil, errAt(len(b), "no root element")
	}
	if len(stack) != 0 {
		return nil, errAt(len(b), "element %q not closed", stack[len(stack)-1].Name)
	}
	return root, nil
}

func formatValue(typ uint8, data uint32) string {
	switch typ {
	case TypeIntDec:
		return strconv.FormatInt(int64(int32(data)), 10)
	case TypeIntHex:
		return "0x" + strconv.FormatUint(uint64(data), 16)
	case TypeBool:
		if data != 0 {
			return "true"
		}
		return "false"
	case TypeReference:
		return fmt.Sprintf("@0x%08x", data)
	case TypeNull:
		return ""
	}
	return fmt.Sprintf("(type %#x)0x%x", typ, data)
}

func decodePool(c []byte, base int) ([]string, error) {
	if len(c) < stringPoolHdrSize {
		return nil, errAt(base, "string pool header too short")
	}
	hdr := int(binary.LittleEndian.Uint16(c[2:]))
	count := binary.LittleEndian.Uint32(c[8:])
	flags := binary.LittleEndian.Uint32(c[16:])
	start := binary.LittleEndian.Uint32(c[20:])
	if hdr < stringPoolHdrSize || uint64(hdr)+uint64(count)*4 > uint64(len(c)) || uint64(start) > uint64(len(c)) {
		return nil, errAt(base, "string pool counts overrun the chunk (%d strings)", count)
	}
	utf8 := flags&flagUTF8 != 0
	out := make([]string, count)
	for i := range out {
		o := uint64(start) + uint64(binary.LittleEndian.Uint32(c[hdr+4*i:]))
		if o >= uint64(len(c)) {
			return nil, errAt(base, "string %d offset %d outside the pool", i, o)
		}
		s, err := poolString(c[o:], utf8)
		if err != nil {
			return nil, errAt(base+int(o), "string %d: %v", i, err)
		}
		out[i] = s
	}
	return out, nil
}

var errShort = errors.New("truncated string")

func poolString(b []byte, utf8 bool) (string, error) {
	if utf8 {
		// UTF-16 length (skipped), then UTF-8 byte length, each 1 or 2 bytes.
		_, n1, ok := len8(b)
		if !ok {
			return "", errShort
		}
		l, n2, ok := len8(b[n1:])
		if !ok || n1+n2+l > len(b) {
			return "", errShort
		}
		return string(b[n1+n2 : n1+n2+l]), nil
	}
	if len(b) < 2 {
		return "", errShort
	}
	l, n := int(binary.LittleEndian.Uint16(b)), 2
	if l&0x8000 != 0 {
		if len(b) < 4 {
			return "", errShort
		}
		l = (l&0x7fff)<<16 | int(binary.LittleEndian.Uint16(b[2:]))
		n = 4
	}
	if l > (len(b)-n)/2 {
		return "", errShort
	}
	u := make([]uint16, l)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[n+2*i:])
	}
	return string(utf16.Decode(u)), nil
}

func len8(b []byte) (int, int, bool) {
	if len(b) < 1 {
		return 0, 0, false
	}
	if b[0]&0x80 == 0 {
		return int(b[0]), 1, true
	}
	if len(b) < 2 {
		return 0, 0, false
	}
	return int(b[0]&0x7f)<<8 | int(b[1]), 2, true
}
