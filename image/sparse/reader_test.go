package sparse

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
)

// fixtureSparse lists every sparse file among the shared fixtures.
func fixtureSparse(t *testing.T) []string {
	fx := validators.Fixtures(t)
	var out []string
	for _, p := range []string{"sparse/pattern.sparse.img", "sparse/big.sparse.img", "sparse/odd.sparse.img",
		"ext4/system.sparse.img", "erofs/system.lz4hc.sparse.img", "super/super.sparse.img"} {
		out = append(out, filepath.Join(fx, p))
	}
	pieces, _ := filepath.Glob(filepath.Join(fx, "sparse/big.split/*"))
	return append(out, pieces...)
}

// Our expanded view of every fixture equals what simg2img writes.
func TestReaderMatchesSimg2img(t *testing.T) {
	validators.Tool(t, "simg2img")
	for _, path := range fixtureSparse(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			img, closer, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer closer.Close()
			if _, ok := img.(*Image); !ok {
				t.Fatalf("Open returned %T, want *sparse.Image", img)
			}
			out := filepath.Join(t.TempDir(), "raw")
			validators.Run(t, "simg2img", path, out)
			st, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if img.Size() != st.Size() {
				t.Fatalf("expanded size %d, simg2img wrote %d", img.Size(), st.Size())
			}
			if imageSHA(t, img) != fileSHA(t, out) {
				t.Fatalf("expanded bytes differ from simg2img output")
			}
		})
	}
}

// Chunks agree with simg_dump -v, field by field.
func TestChunksMatchSimgDump(t *testing.T) {
	validators.Tool(t, "simg_dump")
	for _, path := range fixtureSparse(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := image.OpenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m, err := NewReader(f, f.Size())
			if err != nil {
				t.Fatal(err)
			}
			chunks, err := m.Chunks()
			if err != nil {
				t.Fatal(err)
			}
			dump := validators.Run(t, "simg_dump", "-v", path)
			var rows [][]string
			for _, line := range strings.Split(dump, "\n") {
				fs := strings.Fields(line)
				if len(fs) >= 6 && fs[0] == strconv.Itoa(len(rows)+1) {
					rows = append(rows, fs)
				}
			}
			if len(rows) != len(chunks) {
				t.Fatalf("simg_dump lists %d chunks, we found %d\n%s", len(rows), len(chunks), dump)
			}
			names := map[ChunkType]string{ChunkRaw: "Raw", ChunkFill: "Fill", ChunkDontCare: "Don't", ChunkCRC32: "CRC"}
			for i, c := range chunks {
				r := rows[i]
				want := []string{strconv.FormatInt(c.DataOffset, 10), strconv.FormatInt(c.DataSize, 10),
					strconv.Itoa(int(c.Block)), strconv.Itoa(int(c.Blocks)), names[c.Type]}
				if strings.Join(r[1:6], " ") != strings.Join(want, " ") {
					t.Errorf("chunk %d: simg_dump %v, we %v", i, r[1:6], want)
				}
			}
			info := m.Info()
			if int(info.TotalChunks) != len(chunks) || info.ExpandedSize != m.Size() || info.BlockSize != 4096 {
				t.Errorf("Info %+v inconsistent with %d chunks", info, len(chunks))
			}
			if !strings.Contains(dump, strconv.Itoa(int(info.TotalBlocks))+" 4096-byte output blocks in "+strconv.Itoa(len(chunks))+" input chunks") {
				t.Errorf("simg_dump header line disagrees with Info %+v:\n%s", info, dump)
			}
		})
	}
}

// Random reads at odd offsets and lengths return the same bytes as a sequential expansion.
func TestReadAtRandom(t *testing.T) {
	src := mixed(3<<20+1234, 7)
	for _, dc := range []bool{false, true} {
		sp := encode(t, src, WriteOptions{DontCare: dc})
		m, err := NewReader(bytes.NewReader(sp), int64(len(sp)))
		if err != nil {
			t.Fatal(err)
		}
		want := padded(src, 4096)
		if m.Size() != int64(len(want)) {
			t.Fatalf("size %d, want %d", m.Size(), len(want))
		}
		r := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < 2000; i++ {
			off := r.Int64N(m.Size() + 10)
			n := r.IntN(20000)
			buf := make([]byte, n)
			got, err := m.ReadAt(buf, off)
			wantN := max(0, min(int64(n), m.Size()-off))
			if int64(got) != wantN {
				t.Fatalf("ReadAt(%d, %d) = %d, %v; want %d", n, off, got, err, wantN)
			}
			if int64(n) > wantN && !errors.Is(err, io.EOF) {
				t.Fatalf("short ReadAt(%d,%d) err %v, want EOF", n, off, err)
			}
			if int64(n) == wantN && err != nil {
				t.Fatalf("full ReadAt(%d,%d) err %v", n, off, err)
			}
			if !bytes.Equal(buf[:got], want[off:off+int64(got)]) {
				t.Fatalf("ReadAt(%d, %d) bytes differ", n, off)
			}
		}
	}
}

func header(bs, blocks, chunks uint32) []byte {
	h := newHeader(bs, blocks, chunks)
	b := make([]byte, FileHeaderSize)
	h.marshal(b)
	return b
}

func chunk(t ChunkType, blocks uint32, data []byte) []byte {
	b := make([]byte, ChunkHeaderSize, ChunkHeaderSize+len(data))
	putChunkHeader(b, t, blocks, uint32(ChunkHeaderSize+len(data)))
	return append(b, data...)
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// Bad files are rejected with errors that satisfy failure.ErrInvalid and name the problem.
func TestCorrupt(t *testing.T) {
	good := cat(header(16, 3, 3), chunk(ChunkRaw, 1, bytes.Repeat([]byte{7}, 16)), chunk(ChunkFill, 1, le32(0xabcd)), chunk(ChunkDontCare, 1, nil))
	if _, err := NewReader(bytes.NewReader(good), int64(len(good))); err != nil {
		t.Fatalf("good file rejected: %v", err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := map[string]struct {
		data []byte
		msg  string
	}{
		"empty":          {nil, "shorter than a sparse header"},
		"magic":          {mut(func(b []byte) []byte { b[0] = 0; return b }), "bad magic"},
		"major":          {mut(func(b []byte) []byte { b[4] = 2; return b }), "major version"},
		"file hdr small": {mut(func(b []byte) []byte { b[8] = 20; return b }), "file header size"},
		"chunk hdr":      {mut(func(b []byte) []byte { b[10] = 8; return b }), "chunk header size"},
		"block size 0":   {mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 0); return b }), "block size"},
		"block size odd": {mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 4097); return b }), "block size"},
		"too many blks":  {mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[16:], 4); return b }), "cover 3 blocks, header says 4"},
		"too few blks":   {mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[16:], 2); return b }), "more than the header's 2 blocks"},
		"chunk count":    {mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[20:], 1<<31); return b }), "cannot fit"},
		"extra chunk":    {mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[20:], 4); return b }), "beyond end of file"},
		"raw size":       {mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[28+4:], 2); return b }), "raw chunk of 2 blocks"},
		"total_sz small": {mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[28+8:], 4); return b }), "smaller than the chunk header"},
		"total_sz huge":  {mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[28+8:], 1<<31); return b }), "past the end of the file"},
		"chunk type":     {mut(func(b []byte) []byte { b[28] = 0x55; return b }), "unknown chunk type"},
		"fill size":      {cat(header(16, 1, 1), chunk(ChunkFill, 1, []byte{1, 2, 3, 4, 5})), "want 4"},
		"dont care data": {cat(header(16, 1, 1), chunk(ChunkDontCare, 1, []byte{1})), "want 0"},
		"huge expanded":  {cat(header(1<<26, 1<<31, 1), chunk(ChunkDontCare, 1<<31, nil)), "beyond any real partition"},
	}
	for i := 1; i < len(good); i += 7 {
		cases["truncated at "+strconv.Itoa(i)] = struct {
			data []byte
			msg  string
		}{good[:i], ""}
	}
	for name, c := range cases {
		_, err := NewReader(bytes.NewReader(c.data), int64(len(c.data)))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: %v does not satisfy ErrInvalid", name, err)
		}
		if !strings.Contains(err.Error(), c.msg) || !strings.HasPrefix(err.Error(), "sparse: ") {
			t.Errorf("%s: error %q does not say %q", name, err, c.msg)
		}
	}
}

// A file header and chunk headers longer than version 1.0's are honoured (their extra bytes skipped).
func TestLongHeaders(t *testing.T) {
	h := newHeader(8, 2, 2)
	h.FileHdrSize, h.ChunkHdrSize = 32, 16
	b := make([]byte, FileHeaderSize)
	h.marshal(b)
	b = append(b, 0xee, 0xee, 0xee, 0xee)
	raw := make([]byte, 16)
	putChunkHeader(raw, ChunkRaw, 1, 16+8)
	copy(raw[12:], []byte{0xee, 0xee, 0xee, 0xee})
	b = append(append(b, raw...), []byte("ABCDEFGH")...)
	fill := make([]byte, 16)
	putChunkHeader(fill, ChunkFill, 1, 16+4)
	b = append(append(b, fill...), le32(0x64636261)...)
	m, err := NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(image.Reader(m))
	if err != nil || string(got) != "ABCDEFGHabcdabcd" {
		t.Fatalf("expanded %q, %v", got, err)
	}
}

// CRC32 chunks and image_checksum are checked; a flipped data byte fails Verify.
func TestVerify(t *testing.T) {
	src := mixed(1<<20+4096*3, 3)
	for _, dc := range []bool{false, true} {
		sp := encode(t, src, WriteOptions{DontCare: dc, CRC: true})
		m, err := NewReader(bytes.NewReader(sp), int64(len(sp)))
		if err != nil {
			t.Fatal(err)
		}
		if m.Info().Chunks.CRC32 != 1 {
			t.Fatalf("no CRC32 chunk written: %+v", m.Info())
		}
		if err := m.Verify(t.Context()); err != nil {
			t.Fatalf("dontcare=%v: %v", dc, err)
		}
		// Set the header's image checksum to the CRC32 chunk's value: still valid.
		withSum := bytes.Clone(sp)
		copy(withSum[24:], sp[len(sp)-4:])
		m2, _ := NewReader(bytes.NewReader(withSum), int64(len(withSum)))
		if err := m2.Verify(t.Context()); err != nil {
			t.Fatalf("image_checksum: %v", err)
		}
		withSum[24] ^= 1
		m2, _ = NewReader(bytes.NewReader(withSum), int64(len(withSum)))
		if err := m2.Verify(t.Context()); !errors.Is(err, failure.ErrInvalid) || !strings.Contains(err.Error(), "image_checksum") {
			t.Fatalf("bad image_checksum: %v", err)
		}
		chunks, _ := m.Chunks()
		for _, c := range chunks {
			if c.Type == ChunkRaw {
				bad := bytes.Clone(sp)
				bad[c.DataOffset+100] ^= 0x40
				mb, _ := NewReader(bytes.NewReader(bad), int64(len(bad)))
				if err := mb.Verify(t.Context()); !errors.Is(err, failure.ErrInvalid) || !strings.Contains(err.Error(), "CRC32") {
					t.Fatalf("flipped byte: %v", err)
				}
				break
			}
		}
	}
	// libsparse's own writer sums one block per fill and nothing for holes; such files verify too.
	ls := cat(header(8, 4, 4), chunk(ChunkFill, 2, le32(5)), chunk(ChunkDontCare, 1, nil), chunk(ChunkRaw, 1, []byte("12345678")),
		chunk(ChunkCRC32, 0, le32(crcOf(cat(le32(5), le32(5), []byte("12345678"))))))
	m, err := NewReader(bytes.NewReader(ls), int64(len(ls)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(t.Context()); err != nil {
		t.Fatalf("libsparse-style CRC: %v", err)
	}
}

// Expand writes the same bytes as ReadAt, whether or not holes are skipped; DONT_CARE regions keep what
// the destination held (a device applying one piece of a split image must not wipe the others).
func TestExpand(t *testing.T) {
	src := mixed(2<<20+4096*7, 13)
	for _, tc := range []struct {
		dontCare, zeroed bool
	}{{false, false}, {true, true}, {true, false}} {
		sp := encode(t, src, WriteOptions{DontCare: tc.dontCare})
		m, err := NewReader(bytes.NewReader(sp), int64(len(sp)))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		f, err := os.Create(filepath.Join(dir, "out"))
		if err != nil {
			t.Fatal(err)
		}
		want := padded(src, 4096)
		if !tc.zeroed { // garbage that Expand must overwrite, except under DONT_CARE
			f.Write(bytes.Repeat([]byte{0x5a}, int(m.Size())))
			chunks, err := m.Chunks()
			if err != nil {
				t.Fatal(err)
			}
			want = append([]byte(nil), want...)
			var off int64
			for _, c := range chunks {
				n := int64(c.Blocks) * int64(m.BlockSize())
				if c.Type == ChunkDontCare {
					copy(want[off:off+n], bytes.Repeat([]byte{0x5a}, int(n)))
				}
				off += n
			}
		}
		if err := m.Expand(t.Context(), f, tc.zeroed, nil); err != nil {
			t.Fatal(err)
		}
		f.Truncate(m.Size())
		f.Close()
		if fileSHA(t, f.Name()) != sha(want) {
			t.Fatalf("dontCare=%v zeroed=%v: expanded file differs", tc.dontCare, tc.zeroed)
		}
	}
}
