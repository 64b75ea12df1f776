package dtbo

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/romforge/romforge/internal/failure"
)

// No reference tool is installed for dtbo images (AOSP mkdtimg is not packaged in Debian), so the
// tests build images from the layout documented in AOSP dt_table.h and source.android.com ("DTB/DTBO
// partitions"): a 32-byte big-endian header, 32-byte entries right after it, then the blobs, each
// blob page-aligned as mkdtimg does.

type testEntry struct {
	blob           []byte
	id, rev, flags uint32
	custom         [4]uint32
}

func fdt(n int, fill byte) []byte {
	b := bytes.Repeat([]byte{fill}, n)
	binary.BigEndian.PutUint32(b, FDTMagic)
	binary.BigEndian.PutUint32(b[4:], uint32(n))
	return b
}

func makeDTBO(version uint32, page int, entries []testEntry) []byte {
	be := binary.BigEndian
	off := headerLen + entryLen*len(entries)
	var blobs []byte
	table := make([]byte, 0, entryLen*len(entries))
	for _, e := range entries {
		for (off+len(blobs))%page != 0 {
			blobs = append(blobs, 0)
		}
		at := off + len(blobs)
		blobs = append(blobs, e.blob...)
		w := make([]byte, entryLen)
		be.PutUint32(w[0:], uint32(len(e.blob)))
		be.PutUint32(w[4:], uint32(at))
		be.PutUint32(w[8:], e.id)
		be.PutUint32(w[12:], e.rev)
		if version >= 1 {
			be.PutUint32(w[16:], e.flags)
			for j := 0; j < 3; j++ {
				be.PutUint32(w[20+4*j:], e.custom[j])
			}
		} else {
			for j := 0; j < 4; j++ {
				be.PutUint32(w[16+4*j:], e.custom[j])
			}
		}
		table = append(table, w...)
	}
	total := off + len(blobs)
	h := make([]byte, headerLen)
	for i, v := range []uint32{Magic, uint32(total), headerLen, entryLen, uint32(len(entries)), headerLen, uint32(page), version} {
		be.PutUint32(h[4*i:], v)
	}
	return append(append(h, table...), blobs...)
}

func TestParseV0(t *testing.T) {
	img := makeDTBO(0, 2048, []testEntry{
		{blob: fdt(300, 1), id: 0x1234, rev: 1, custom: [4]uint32{1, 2, 3, 4}},
		{blob: fdt(5000, 2), id: 0x5678, rev: 2},
	})
	img = append(img, make([]byte, 4096)...) // partition padding after total_size
	im, err := Parse(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if im.Header.DTEntryCount != 2 || im.Header.PageSize != 2048 || len(im.Entries) != 2 {
		t.Fatalf("header %+v", im.Header)
	}
	e0, e1 := im.Entries[0], im.Entries[1]
	if e0.ID != 0x1234 || e0.Rev != 1 || e0.Custom != [4]uint32{1, 2, 3, 4} || e0.DTOffset != 2048 || e0.DTSize != 300 || !e0.FDTMagicOK || e0.Compression != "none" {
		t.Errorf("entry 0: %+v", e0)
	}
	if e1.ID != 0x5678 || e1.DTOffset != 4096 || e1.FDTSize != 5000 || !e1.FDTMagicOK {
		t.Errorf("entry 1: %+v", e1)
	}
	var blob bytes.Buffer
	blob.ReadFrom(im.Open(1))
	if !bytes.Equal(blob.Bytes(), fdt(5000, 2)) {
		t.Error("Open(1) returns other bytes")
	}
	js, err := json.Marshal(im.Info())
	if err != nil || !bytes.Contains(js, []byte(`"dt_entry_count":2`)) || !bytes.Contains(js, []byte(`"id":4660`)) {
		t.Errorf("info JSON %s (%v)", js, err)
	}
	if len(im.Info().Notes) != 0 {
		t.Errorf("notes on a good image: %v", im.Info().Notes)
	}
}

func TestParseV1Compressed(t *testing.T) {
	img := makeDTBO(1, 4096, []testEntry{
		{blob: []byte{0x78, 0x9c, 1, 2, 3, 4, 5, 6, 7}, id: 7, flags: 1, custom: [4]uint32{9, 8, 7}},
		{blob: []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0}, id: 8, flags: 2},
		{blob: []byte("not an fdt at all"), id: 9},
	})
	im, err := Parse(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{im.Entries[0].Compression, im.Entries[1].Compression, im.Entries[2].Compression}
	if got[0] != "zlib" || got[1] != "gzip" || got[2] != "none" || im.Entries[0].Custom != [4]uint32{9, 8, 7, 0} {
		t.Errorf("compression %v, entry 0 %+v", got, im.Entries[0])
	}
	if notes := im.Info().Notes; len(notes) != 1 {
		t.Errorf("want one note (entry 2 lacks the FDT magic), got %v", notes)
	}
}

func TestHostile(t *testing.T) {
	good := makeDTBO(0, 2048, []testEntry{{blob: fdt(64, 1), id: 1}})
	set := func(off int, v uint32) []byte {
		c := bytes.Clone(good)
		binary.BigEndian.PutUint32(c[off:], v)
		return c
	}
	for name, b := range map[string][]byte{
		"empty":            {},
		"short":            good[:20],
		"bad magic":        set(0, 0xd00dfeed),
		"total_size huge":  set(4, 0xffffffff),
		"header_size 0":    set(8, 0),
		"entry size 4":     set(12, 4),
		"entry count huge": set(16, 0xffffffff),
		"entries offset":   set(20, 0xfffffff0),
		"version 7":        set(28, 7),
		"dt_size beyond":   set(32, 0x10000000),
		"dt_offset beyond": set(36, 0xffffff00),
		"truncated":        good[:len(good)-10],
	} {
		_, err := Parse(bytes.NewReader(b), int64(len(b)))
		if err == nil || !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func FuzzDTBO(f *testing.F) {
	f.Add(makeDTBO(0, 2048, []testEntry{{blob: fdt(64, 1), id: 1}, {blob: fdt(10, 3), id: 2}}))
	f.Add(makeDTBO(1, 4096, []testEntry{{blob: []byte{0x78, 0x9c, 0}, flags: 1}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, failure.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		for i, e := range im.Entries {
			if int64(e.DTOffset)+int64(e.DTSize) > int64(len(b)) {
				t.Fatalf("entry %d beyond the input", i)
			}
			if _, err := io.ReadAll(im.Open(i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := json.Marshal(im.Info()); err != nil {
			t.Fatal(err)
		}
	})
}
