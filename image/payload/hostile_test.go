package payload

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
)

// smallPayload writes two small partitions with every full-payload operation type our writer makes.
func smallPayload(t testing.TB) ([]byte, map[string][]byte) {
	t.Helper()
	var sys []byte
	for i := 0; len(sys) < 160<<10; i++ { // compressible everywhere, so every chosen compressor is kept
		sys = fmt.Appendf(sys, "line %d of a system image %x\n", i, i*i*7919)
	}
	imgs := map[string][]byte{"boot": testImage(10, 96<<10), "system": append(sys[:160<<10], make([]byte, 32<<10)...)}
	kinds := []OpType{OpReplaceXZ, OpReplaceBZ, OpZSTD, OpReplace}
	path := writePayload(t, []WritePartition{{Name: "boot", Image: memImage(imgs["boot"]), Compression: OpReplaceXZ},
		{Name: "system", Image: memImage(imgs["system"])}},
		WriteOptions{OpSize: 32 << 10, ZeroOps: true, Choose: func(_ string, i int, _ []byte) OpType { return kinds[i%4] }})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b, imgs
}

// rebuild re-encodes the manifest of payload b after edit, keeping the data blobs.
func rebuild(t testing.TB, b []byte, edit func(m *Manifest)) []byte {
	t.Helper()
	p, err := NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	edit(p.Manifest)
	man := p.Manifest.Encode()
	out := make([]byte, HeaderSize)
	copy(out, b[:HeaderSize])
	binary.BigEndian.PutUint64(out[12:], uint64(len(man)))
	binary.BigEndian.PutUint32(out[20:], 0)
	out = append(out, man...)
	return append(out, b[p.DataOffset:]...)
}

// extractTo runs ExtractAll on payload bytes into a fresh directory.
func extractTo(t *testing.T, b []byte) (string, error) {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(t.TempDir(), "p.bin")
	os.WriteFile(in, b, 0o644)
	p, c, err := Open(in)
	if err != nil {
		return dir, err
	}
	defer c.Close()
	_, err = p.ExtractAll(context.Background(), dir, nil, ExtractAllOptions{ExtractOptions: ExtractOptions{Workers: 2}})
	return dir, err
}

// checkDir makes sure every image left in dir is complete and correct and no temporary file is left.
func checkDir(t *testing.T, dir string, imgs map[string][]byte, failed bool) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		name := strings.TrimSuffix(e.Name(), ".img")
		want, ok := imgs[name]
		if !ok {
			t.Fatalf("left %s behind", e.Name())
		}
		got, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if !bytes.Equal(got, want) {
			t.Fatalf("%s left behind as if complete, but wrong", e.Name())
		}
	}
	if failed && len(ents) == len(imgs) {
		t.Fatalf("failed, yet every image is present")
	}
}

func TestTruncated(t *testing.T) {
	b, imgs := smallPayload(t)
	for cut := 0; cut < len(b); cut += 1 + cut/6 {
		dir, err := extractTo(t, b[:cut])
		if err == nil {
			t.Fatalf("cut at %d/%d extracted without error", cut, len(b))
		}
		if !errors.Is(err, failure.ErrInvalid) {
			t.Fatalf("cut at %d: %v is not ErrInvalid", cut, err)
		}
		checkDir(t, dir, imgs, true)
	}
}

func TestHostileManifests(t *testing.T) {
	b, imgs := smallPayload(t)
	firstOf := func(m *Manifest, ty OpType) *Operation {
		for i := range m.Partitions[1].Operations {
			if op := &m.Partitions[1].Operations[i]; op.HasData && op.Type == ty {
				return op
			}
		}
		t.Fatalf("no %s op", ty)
		return nil
	}
	firstData := func(m *Manifest) *Operation { return firstOf(m, OpReplaceXZ) }
	cases := []struct {
		name  string
		mk    func() []byte
		want  string
		index bool // the error names partition and operation index
	}{
		{"manifest beyond file", func() []byte {
			c := bytes.Clone(b)
			binary.BigEndian.PutUint64(c[12:], uint64(len(b)))
			return c
		}, "manifest size", false},
		{"metadata signature beyond file", func() []byte {
			c := bytes.Clone(b)
			binary.BigEndian.PutUint32(c[20:], uint32(len(b)))
			return c
		}, "metadata signature size", false},
		{"version 1", func() []byte {
			c := bytes.Clone(b)
			binary.BigEndian.PutUint64(c[4:], 1)
			return c
		}, "version 1", false},
		{"extent out of range", func() []byte {
			return rebuild(t, b, func(m *Manifest) { m.Partitions[1].Operations[3].DstExtents[0].StartBlock = 1 << 40 })
		}, "outside the", true},
		{"overlapping extents", func() []byte {
			return rebuild(t, b, func(m *Manifest) { m.Partitions[1].Operations[2].DstExtents[0].StartBlock = 0 })
		}, "overlap", true},
		{"data beyond payload", func() []byte {
			return rebuild(t, b, func(m *Manifest) { firstData(m).DataOffset = uint64(len(b)) })
		}, "beyond", true},
		{"hash mismatch", func() []byte {
			return rebuild(t, b, func(m *Manifest) { firstData(m).DataSHA256[0] ^= 1 })
		}, "hash mismatch", true},
		{"partition hash mismatch", func() []byte {
			return rebuild(t, b, func(m *Manifest) { m.Partitions[1].NewInfo.Hash[0] ^= 1 })
		}, "hash mismatch", false},
		{"unsupported op", func() []byte {
			return rebuild(t, b, func(m *Manifest) { m.Partitions[1].Operations[2].Type = OpPuffDiff })
		}, "unsupported operation PUFFDIFF", true},
		{"decompression bomb bzip2", func() []byte {
			return rebuild(t, b, func(m *Manifest) { firstOf(m, OpReplaceBZ).DstExtents[0].NumBlocks = 1 })
		}, "more bytes than its destination", true},
		{"decompression bomb zstd", func() []byte {
			return rebuild(t, b, func(m *Manifest) { firstOf(m, OpZSTD).DstExtents[0].NumBlocks = 1 })
		}, "more bytes than its destination", true},
		{"decompression bomb xz", func() []byte {
			// The LZMA2 dictionary is capped at the destination size, so the stream fails either on a match
			// reaching past it or on the output limit.
			return rebuild(t, b, func(m *Manifest) { firstData(m).DstExtents[0].NumBlocks = 1 })
		}, "", true},
		{"replace too short", func() []byte {
			return rebuild(t, b, func(m *Manifest) { firstOf(m, OpReplace).DstExtents[0].NumBlocks += 2 })
		}, "does not fill", true},
		{"corrupt xz data", func() []byte {
			return rebuild(t, b, func(m *Manifest) {
				op := firstData(m)
				op.DataSHA256 = nil // let the decoder see it
				op.DataOffset++
			})
		}, "", true},
	}
	for _, c := range cases {
		dir, err := extractTo(t, c.mk())
		if err == nil || !errors.Is(err, failure.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: got %v, want an ErrInvalid mentioning %q", c.name, err, c.want)
		}
		var oe *OpError
		if c.index && (!errors.As(err, &oe) || oe.Partition != "system" || !strings.Contains(err.Error(), `partition "system" operation`)) {
			t.Fatalf("%s: error does not name partition and operation: %v", c.name, err)
		}
		if c.name == "hash mismatch" && !errors.Is(err, ErrHashMismatch) {
			t.Fatalf("hash mismatch is not ErrHashMismatch: %v", err)
		}
		checkDir(t, dir, imgs, true)
	}
}

func TestNotAPayload(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("CrA"), []byte("PK\x03\x04garbage"), bytes.Repeat([]byte{0}, 100)} {
		if _, err := NewReader(bytes.NewReader(b), int64(len(b))); !errors.Is(err, failure.ErrInvalid) {
			t.Fatalf("%q: %v", b, err)
		}
		path := filepath.Join(t.TempDir(), "x")
		os.WriteFile(path, b, 0o644)
		if _, _, err := Open(path); !errors.Is(err, failure.ErrInvalid) {
			t.Fatalf("Open %q: %v", b, err)
		}
	}
}

func TestSmallPayloadExtracts(t *testing.T) {
	b, imgs := smallPayload(t)
	dir, err := extractTo(t, b)
	if err != nil {
		t.Fatal(err)
	}
	checkDir(t, dir, imgs, false)
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("extracted %d files", len(ents))
	}
}

// memWriterAt is a bounded in-memory destination for fuzzing.
type memWriterAt struct{ b []byte }

func (m *memWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, errors.New("write outside the partition")
	}
	return copy(m.b[off:], p), nil
}

func (m *memWriterAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(m.b)) {
		return 0, errors.New("read outside")
	}
	return copy(p, m.b[off:]), nil
}

// tinyPayload is a few-KB payload with every full-payload operation type, the fuzz seed
// testdata/tiny-payload.bin (regenerate with ROMFORGE_UPDATE_SEEDS=1 go test -run TestTinySeed).
func tinyPayload(t testing.TB) []byte {
	var img []byte
	for i := 0; len(img) < 20<<10; i++ {
		img = fmt.Appendf(img, "%d,", i*i)
	}
	img = append(img[:20<<10], make([]byte, 4096)...)
	kinds := []OpType{OpReplaceXZ, OpReplaceBZ, OpZSTD, OpReplace, OpZero}
	path := writePayload(t, []WritePartition{{Name: "a", Image: memImage(img)}, {Name: "b", Image: memImage(img[:8192])}},
		WriteOptions{OpSize: 4096, ZeroOps: true, Choose: func(_ string, i int, _ []byte) OpType { return kinds[i%4] }})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTinySeed(t *testing.T) {
	b := tinyPayload(t)
	if os.Getenv("ROMFORGE_UPDATE_SEEDS") != "" {
		os.WriteFile("testdata/tiny-payload.bin", b, 0o644)
	}
	p, err := NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	dst := &memWriterAt{b: make([]byte, 24<<10)}
	if err := p.Extract(context.Background(), "a", dst, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
}

// microPayload is a payload of about 1 KB: two one-block partitions, one REPLACE_XZ, one REPLACE_BZ
// and a ZERO block, small enough that the fuzzer mutates and minimizes it quickly.
func microPayload(tb testing.TB) []byte {
	blk := make([]byte, 4096)
	for i := range 1024 {
		blk[i] = byte(i * 7)
	}
	kinds := []OpType{OpReplaceXZ, OpZero, OpReplaceBZ, OpZSTD}
	path := writePayload(tb, []WritePartition{{Name: "a", Image: memImage(append(bytes.Clone(blk), make([]byte, 4096)...))}, {Name: "b", Image: memImage(blk)}},
		WriteOptions{OpSize: 4096, ZeroOps: true, Workers: 1, Choose: func(name string, i int, _ []byte) OpType {
			if name == "b" {
				return kinds[2+i%2]
			}
			return kinds[i%2]
		}})
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// fuzzSeeds adds the micro payload and the fixtures' first 4 KiB (header and manifest of real payloads).
func fuzzSeeds(f *testing.F) {
	f.Add(microPayload(f))
	for _, n := range []string{"testdata/fixture-full-head.bin", "testdata/fixture-delta-head.bin"} {
		if s, err := os.ReadFile(n); err == nil {
			f.Add(s)
		}
	}
}

// fuzzSource is the old image delta operations read; shared, never written.
var fuzzSource = memImage(make([]byte, 64<<10))

func FuzzHeader(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, failure.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		_ = p.Info()
		for _, pt := range p.Partitions() {
			// Bigger partitions would make each execution slow; their operations are the same code.
			if pt.Size > 256<<10 {
				continue
			}
			dst := &memWriterAt{b: make([]byte, pt.Size)}
			err := p.Extract(context.Background(), pt.Name, dst, ExtractOptions{Workers: 1, Source: fuzzSource})
			if err != nil && !errors.Is(err, failure.ErrInvalid) {
				t.Fatalf("extract %s: error %v is not ErrInvalid", pt.Name, err)
			}
		}
	})
}

func FuzzManifest(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > HeaderSize && string(b[:4]) == Magic {
			b = b[HeaderSize:]
		}
		m, err := DecodeManifest(b)
		if err != nil {
			return
		}
		m2, err := DecodeManifest(m.Encode())
		if err != nil {
			t.Fatalf("re-decoding our encoding: %v", err)
		}
		if len(m2.Partitions) != len(m.Partitions) {
			t.Fatalf("partitions %d != %d", len(m2.Partitions), len(m.Partitions))
		}
	})
}

// TestMutatedPayloads feeds randomly damaged copies of the tiny payload through open and extract: every
// failure must be an invalid-input error, and nothing may panic.
func TestMutatedPayloads(t *testing.T) {
	seed, err := os.ReadFile("testdata/tiny-payload.bin")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for it := 0; it < 400; it++ {
		b := bytes.Clone(seed)
		for k := 0; k < 1+r.IntN(4); k++ {
			b[r.IntN(len(b))] = byte(r.Uint32())
		}
		p, err := NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, failure.ErrInvalid) {
				t.Fatalf("mutation %d: open error %v is not ErrInvalid", it, err)
			}
			continue
		}
		for _, pt := range p.Partitions() {
			if pt.Size > 4<<20 {
				continue
			}
			dst := &memWriterAt{b: make([]byte, pt.Size)}
			err := p.Extract(context.Background(), pt.Name, dst, ExtractOptions{Workers: 2, Source: memImage(make([]byte, 64<<10))})
			if err != nil && !errors.Is(err, failure.ErrInvalid) {
				t.Fatalf("mutation %d: extract %s: %v is not ErrInvalid", it, pt.Name, err)
			}
		}
	}
}

// A few-KB payload declaring a terabyte (or 2^49 bytes) partition is refused as invalid input before a
// byte is written, quickly and in little memory; an explicit limit lets a big declaration through the
// size check (and only the size check).
func TestDeclaredSizeBounded(t *testing.T) {
	b := tinyPayload(t)
	for _, size := range []uint64{1 << 40, 1 << 49, 1<<63 + 5, image.FloorLimit + 4096} {
		huge := rebuild(t, b, func(m *Manifest) { m.Partitions[0].NewInfo.Size = size })
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		dir, err := extractTo(t, huge)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, failure.ErrInvalid) || !strings.Contains(err.Error(), "declares") {
			t.Fatalf("size %d: %v, want an invalid-input size refusal", size, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("size %d: refusal took %v", size, d)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
			t.Errorf("size %d: refusal allocated %d bytes", size, n)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("size %d: refusal left %d files", size, len(ents))
		}
	}
	// The bound scales with the evidence: a payload of n bytes may declare up to RatioLimit·n.
	huge := rebuild(t, b, func(m *Manifest) { m.Partitions[0].NewInfo.Size = 1 << 40 })
	p, err := NewReader(bytes.NewReader(huge), int64(len(huge)))
	if err != nil {
		t.Fatal(err)
	}
	dst := &memWriterAt{b: make([]byte, 4096)}
	for _, lim := range []image.SizeLimit{{Max: 1 << 41}, {Partitions: map[string]int64{"a": 1 << 40}}} {
		err = p.Extract(context.Background(), "a", dst, ExtractOptions{Limit: lim, SkipVerify: true})
		if err == nil || strings.Contains(err.Error(), "declares") {
			t.Fatalf("limit %+v: %v, want the size check passed (and a later failure writing past 4 KiB)", lim, err)
		}
	}
	err = p.Extract(image.WithSizeLimit(context.Background(), image.SizeLimit{Max: 1 << 20}), "a", dst, ExtractOptions{SkipVerify: true})
	if !errors.Is(err, failure.ErrInvalid) || !strings.Contains(err.Error(), "--max-image-size") {
		t.Fatalf("context limit: %v", err)
	}
}

// The fuzz seed is a valid payload: every partition extracts and verifies.
func TestMicroPayloadSeed(t *testing.T) {
	b := microPayload(t)
	if len(b) > 2048 {
		t.Errorf("micro payload is %d bytes", len(b))
	}
	p, err := NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range p.Partitions() {
		dst := &memWriterAt{b: make([]byte, pt.Size)}
		if err := p.Extract(context.Background(), pt.Name, dst, ExtractOptions{Workers: 1}); err != nil {
			t.Fatalf("%s: %v", pt.Name, err)
		}
	}
}
