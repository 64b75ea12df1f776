package gadget

import (
	"encoding/binary"
	"testing"
)

// The descriptor block is what FunctionFS parses: a v2 header whose length and counts match the
// descriptors that follow, each with its own bLength, and the fastboot interface at every speed.
func TestDescriptors(t *testing.T) {
	b := descriptors()
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != descriptorsMagicV2 || int(le.Uint32(b[4:])) != len(b) || le.Uint32(b[8:]) != 7 {
		t.Fatalf("header % x", b[:12])
	}
	counts := []int{int(le.Uint32(b[12:])), int(le.Uint32(b[16:])), int(le.Uint32(b[20:]))}
	p := b[24:]
	for speed, n := range counts {
		var eps []byte
		for i := 0; i < n; i++ {
			if len(p) < 2 || int(p[0]) > len(p) || p[0] < 2 {
				t.Fatalf("speed %d: descriptor %d truncated", speed, i)
			}
			d := p[:p[0]]
			switch d[1] {
			case 4:
				if d[5] != 0xff || d[6] != 0x42 || d[7] != 0x03 || d[4] != 2 {
					t.Errorf("speed %d: interface % x", speed, d)
				}
			case 5:
				if d[3] != 2 {
					t.Errorf("speed %d: endpoint %#x is not bulk", speed, d[2])
				}
				eps = append(eps, d[2])
			}
			p = p[d[0]:]
		}
		if len(eps) != 2 || eps[0] != 0x01 || eps[1] != 0x82 {
			t.Errorf("speed %d: endpoints % x", speed, eps)
		}
	}
	if len(p) != 0 {
		t.Fatalf("%d bytes after the counted descriptors", len(p))
	}
	s := stringsBlock()
	if le.Uint32(s[0:]) != stringsMagic || int(le.Uint32(s[4:])) != len(s) || s[len(s)-1] != 0 {
		t.Fatalf("strings % x", s)
	}
}

func TestParseEvents(t *testing.T) {
	b := make([]byte, 3*eventSize+5)
	b[8] = evEnable
	b[eventSize+0], b[eventSize+1], b[eventSize+8] = 0x80, 6, evSetup
	le := binary.LittleEndian
	le.PutUint16(b[eventSize+6:], 18)
	b[2*eventSize+8] = evDisable
	ev := parseEvents(b)
	if len(ev) != 3 || ev[0].Type != evEnable || ev[1].Type != evSetup || ev[1].RequestType != 0x80 ||
		ev[1].Request != 6 || ev[1].Length != 18 || ev[2].Type != evDisable {
		t.Fatalf("%+v", ev)
	}
}
