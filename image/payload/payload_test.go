package payload

import (
	"bytes"
	"compress/bzip2"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"

	"github.com/romforge/romforge/image/payload/bspatch"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
	"github.com/romforge/romforge/progress"
)

func TestFixtureFull(t *testing.T) {
	fx := validators.Fixtures(t)
	want := map[string]string{"boot": "boot/boot-v4.img", "system": "ext4/system.img", "vendor": "erofs/vendor.img"}
	for _, in := range []string{"payload/full/payload.bin", "payload/ota-full.zip"} {
		p := mustOpen(t, filepath.Join(fx, in))
		info := p.Info()
		if info.Version != 2 || info.BlockSize != 4096 || info.Kind != "full" || !info.Signed || len(info.Partitions) != 3 {
			t.Fatalf("%s: info %+v", in, info)
		}
		// payload_info --list_ops says: boot 2 ops, system 64, vendor 1; 24 REPLACE, 21 REPLACE_BZ, 22 REPLACE_XZ.
		if info.Partitions[0].Operations != 2 || info.Partitions[1].Operations != 64 || info.Partitions[2].Operations != 1 {
			t.Fatalf("%s: op counts %+v", in, info.Partitions)
		}
		if info.OpCounts["REPLACE"] != 24 || info.OpCounts["REPLACE_BZ"] != 21 || info.OpCounts["REPLACE_XZ"] != 22 {
			t.Fatalf("%s: op types %v", in, info.OpCounts)
		}
		dir := t.TempDir()
		rec := &progress.Recorder{}
		res, err := p.ExtractAll(context.Background(), dir, nil, ExtractAllOptions{ExtractOptions: ExtractOptions{Workers: 2, Progress: rec}})
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if len(res) != 3 {
			t.Fatalf("%s: extracted %v", in, res)
		}
		for name, ref := range want {
			sameFile(t, filepath.Join(dir, name+".img"), filepath.Join(fx, ref))
			st, _ := os.Stat(filepath.Join(fx, ref))
			if rec.Total(name) != st.Size() {
				t.Fatalf("progress for %s: %d of %d", name, rec.Total(name), st.Size())
			}
		}
		if _, err := json.Marshal(info); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFixtureDelta(t *testing.T) {
	fx := validators.Fixtures(t)
	p := mustOpen(t, filepath.Join(fx, "payload/delta/payload.bin"))
	if k := p.Info().Kind; k != "delta" {
		t.Fatalf("kind %s", k)
	}
	old := t.TempDir()
	os.Symlink(filepath.Join(fx, "boot/boot-v4.img"), filepath.Join(old, "boot.img"))
	os.Symlink(filepath.Join(fx, "ext4/system.img"), filepath.Join(old, "system.img"))
	dir := t.TempDir()
	// Without the old images the delta cannot apply, and says so.
	_, err := p.ExtractAll(context.Background(), dir, []string{"system"}, ExtractAllOptions{})
	var oe *OpError
	if !errors.As(err, &oe) || !errors.Is(err, ErrNeedSource) || oe.Partition != "system" {
		t.Fatalf("no source: %v", err)
	}
	if _, err := p.ExtractAll(context.Background(), dir, nil, ExtractAllOptions{SourceDir: old, ExtractOptions: ExtractOptions{Workers: 2}}); err != nil {
		t.Fatal(err)
	}
	sameFile(t, filepath.Join(dir, "boot.img"), filepath.Join(fx, "boot/boot-v4-new.img"))
	sameFile(t, filepath.Join(dir, "system.img"), filepath.Join(fx, "ext4/system-v2.img"))
	// The wrong source build is caught by old_partition_info before anything is written.
	wrong := t.TempDir()
	os.Symlink(filepath.Join(fx, "boot/boot-v4-new.img"), filepath.Join(wrong, "boot.img"))
	out := t.TempDir()
	_, err = p.ExtractAll(context.Background(), out, []string{"boot"}, ExtractAllOptions{SourceDir: wrong})
	if !errors.Is(err, ErrHashMismatch) || !errors.Is(err, failure.ErrInvalid) {
		t.Fatalf("wrong source: %v", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Fatalf("left files behind: %v", ents)
	}
	// Without old_partition_info, each operation's src_sha256_hash still catches the wrong source, naming
	// the operation.
	p.Manifest.Partitions[0].OldInfo = nil
	_, err = p.ExtractAll(context.Background(), out, []string{"boot"}, ExtractAllOptions{SourceDir: wrong})
	if !errors.As(err, &oe) || oe.Partition != "boot" || !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), "source SHA-256") {
		t.Fatalf("wrong source, per-op check: %v", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Fatalf("left files behind: %v", ents)
	}
}

// TestBrotliBSDiff turns the fixture's SOURCE_BSDIFF (BSDIFF40) operations into BROTLI_BSDIFF ones with
// BSDF2 patches (brotli control/diff/extra streams), as newer AOSP delta generators write, and applies them.
func TestBrotliBSDiff(t *testing.T) {
	fx := validators.Fixtures(t)
	raw, err := os.ReadFile(filepath.Join(fx, "payload/delta/payload.bin"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	converted := 0
	m := p.Manifest
	m.MinorVersion = 4
	m.HasSignatures = false
	for pi := range m.Partitions {
		for oi := range m.Partitions[pi].Operations {
			op := &m.Partitions[pi].Operations[oi]
			if !op.HasData {
				continue
			}
			blob := raw[p.DataOffset+int64(op.DataOffset):][:op.DataLength]
			if op.Type == OpSourceBSDiff {
				blob = bsdf2Brotli(t, blob)
				op.Type, op.SrcLength, op.DstLength = OpBrotliBSDiff, 0, 0
				converted++
			}
			op.DataOffset, op.DataLength = uint64(len(data)), uint64(len(blob))
			sum := sha256.Sum256(blob)
			op.DataSHA256 = sum[:]
			data = append(data, blob...)
		}
	}
	if converted < 2 {
		t.Fatalf("only %d bsdiff ops converted", converted)
	}
	man := m.Encode()
	out := append([]byte(Magic), make([]byte, 20)...)
	binary.BigEndian.PutUint64(out[4:], 2)
	binary.BigEndian.PutUint64(out[12:], uint64(len(man)))
	out = append(append(out, man...), data...)
	path := filepath.Join(t.TempDir(), "brotli.bin")
	os.WriteFile(path, out, 0o644)
	old := t.TempDir()
	os.Symlink(filepath.Join(fx, "boot/boot-v4.img"), filepath.Join(old, "boot.img"))
	os.Symlink(filepath.Join(fx, "ext4/system.img"), filepath.Join(old, "system.img"))
	dir := t.TempDir()
	q := mustOpen(t, path)
	if q.Info().OpCounts["BROTLI_BSDIFF"] != converted {
		t.Fatalf("op counts %v", q.Info().OpCounts)
	}
	if _, err := q.ExtractAll(context.Background(), dir, nil, ExtractAllOptions{SourceDir: old}); err != nil {
		t.Fatal(err)
	}
	sameFile(t, filepath.Join(dir, "boot.img"), filepath.Join(fx, "boot/boot-v4-new.img"))
	sameFile(t, filepath.Join(dir, "system.img"), filepath.Join(fx, "ext4/system-v2.img"))
}

// bsdf2Brotli re-encodes a BSDIFF40 patch as BSDF2 with three brotli streams.
func bsdf2Brotli(t *testing.T, patch []byte) []byte {
	t.Helper()
	h, err := bspatch.ParseHeader(patch)
	if err != nil {
		t.Fatal(err)
	}
	body := patch[32:]
	parts := [][]byte{body[:h.CtrlLen], body[h.CtrlLen : h.CtrlLen+h.DiffLen], body[h.CtrlLen+h.DiffLen:]}
	out := append([]byte("BSDF2"), bspatch.Brotli, bspatch.Brotli, bspatch.Brotli)
	out = append(out, make([]byte, 24)...)
	var streams [][]byte
	for _, part := range parts {
		plain, err := io.ReadAll(bzip2.NewReader(bytes.NewReader(part)))
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		w := brotli.NewWriter(&b)
		w.Write(plain)
		w.Close()
		streams = append(streams, b.Bytes())
	}
	bspatch.PutOfftin(out[8:], int64(len(streams[0])))
	bspatch.PutOfftin(out[16:], int64(len(streams[1])))
	bspatch.PutOfftin(out[24:], h.NewSize)
	for _, s := range streams {
		out = append(out, s...)
	}
	return out
}

// TestWriterPaycheck: payloads from our writer pass AOSP's checker and its applier reproduces the inputs;
// our reader does too.
func TestWriterPaycheck(t *testing.T) {
	validators.Tool(t, "paycheck")
	a, b := testImage(1, 3<<20), testImage(2, 1<<20+8192)
	kinds := []OpType{OpReplaceXZ, OpReplaceBZ, OpReplace, OpReplaceXZ}
	opt := WriteOptions{OpSize: 256 << 10, Choose: func(_ string, i int, _ []byte) OpType { return kinds[i%len(kinds)] },
		MaxTimestamp: 1700000000, SecurityPatchLevel: "2023-11-01",
		Dynamic: &DynamicPartitionMetadata{Groups: []DynamicPartitionGroup{{Name: "main", Size: 8 << 20, Partitions: []string{"system", "vendor"}}}}}
	path := writePayload(t, []WritePartition{{Name: "system", Image: memImage(a)}, {Name: "vendor", Image: memImage(b), Compression: OpReplaceBZ}}, opt)
	report := filepath.Join(t.TempDir(), "report.txt")
	validators.Run(t, "paycheck", "-c", "-t", "full", "-r", report, path)
	if rep, _ := os.ReadFile(report); !strings.Contains(string(rep), "update type : full") {
		t.Fatalf("paycheck report: %s", rep)
	}
	// The checker is not blind: the same payload with one blob byte flipped fails it.
	raw, _ := os.ReadFile(path)
	raw[len(raw)-100] ^= 1
	bad := filepath.Join(t.TempDir(), "bad.bin")
	os.WriteFile(bad, raw, 0o644)
	if out, err := validators.RunErr("paycheck", "-c", "-t", "full", bad); err == nil {
		t.Fatalf("paycheck accepted a corrupted payload: %s", out)
	}
	dir := t.TempDir()
	ra, rb := filepath.Join(dir, "system.ref"), filepath.Join(dir, "vendor.ref")
	os.WriteFile(ra, a, 0o644)
	os.WriteFile(rb, b, 0o644)
	sa, sb := filepath.Join(dir, "system.theirs"), filepath.Join(dir, "vendor.theirs")
	// paycheck applies the payload, compares with --dst_part_paths and keeps its output in --out_dst_part_paths.
	validators.Run(t, "paycheck", path, "--part_names", "system", "vendor", "--dst_part_paths", ra, rb, "--out_dst_part_paths", sa, sb)
	for f, want := range map[string][]byte{sa: a, sb: b} {
		got, _ := os.ReadFile(f)
		if !bytes.Equal(got, want) {
			t.Fatalf("paycheck applied %s differently (%d vs %d bytes)", f, len(got), len(want))
		}
	}
	info := validators.Run(t, "payload_info", path)
	if !strings.Contains(info, "Number of partitions:        2") {
		t.Fatalf("payload_info: %s", info)
	}
	p := mustOpen(t, path)
	in := p.Info()
	if in.SecurityPatchLevel != "2023-11-01" || in.MaxTimestamp != 1700000000 || len(in.DynamicPartitionGroups) != 1 || in.Signed {
		t.Fatalf("info %+v", in)
	}
	if _, err := p.ExtractAll(context.Background(), dir, nil, ExtractAllOptions{}); err != nil {
		t.Fatal(err)
	}
	sameFile(t, filepath.Join(dir, "system.img"), sa)
	sameFile(t, filepath.Join(dir, "vendor.img"), sb)
}

// TestZstdZeroAndPartialBlock covers what paycheck cannot judge: ZSTD and ZERO operations, and a partition
// whose size is not a multiple of the block size.
func TestZstdZeroAndPartialBlock(t *testing.T) {
	a := testImage(3, 2<<20+1234)
	copy(a[1<<20:], make([]byte, 256<<10)) // a zero chunk
	path := writePayload(t, []WritePartition{{Name: "odm", Image: memImage(a), Compression: OpZSTD}}, WriteOptions{OpSize: 256 << 10, ZeroOps: true})
	p := mustOpen(t, path)
	pt := p.Partitions()[0]
	if pt.OpCounts["ZERO"] == 0 || pt.OpCounts["ZSTD"] == 0 {
		t.Fatalf("op counts %v", pt.OpCounts)
	}
	for _, zeroed := range []bool{false, true} {
		f, err := os.Create(filepath.Join(t.TempDir(), "odm.img"))
		if err != nil {
			t.Fatal(err)
		}
		if !zeroed { // garbage that ZERO ops and padding must overwrite
			f.Write(bytes.Repeat([]byte{0xAA}, len(a)))
		} else {
			f.Truncate(int64(len(a)))
		}
		if err := p.Extract(context.Background(), "odm", f, ExtractOptions{DstZeroed: zeroed, Workers: 3}); err != nil {
			t.Fatal(err)
		}
		f.Close()
		got, _ := os.ReadFile(f.Name())
		if !bytes.Equal(got, a) {
			t.Fatalf("zeroed=%v: extracted image differs", zeroed)
		}
	}
}

// TestBCJPayload: REPLACE_XZ blobs made by the real xz with the ARM64 (and x86) BCJ filter, as HyperOS
// payloads have them, extract correctly.
func TestBCJPayload(t *testing.T) {
	validators.Tool(t, "xz")
	a := testImage(4, 1<<20)
	for _, filter := range []string{"--arm64", "--x86"} {
		path := writePayload(t, []WritePartition{{Name: "vendor_boot", Image: memImage(a), Compression: OpReplaceXZ}},
			WriteOptions{OpSize: 256 << 10, Compress: externalXZ(t, filter, "--lzma2=preset=6")})
		p := mustOpen(t, path)
		if n := p.Partitions()[0].OpCounts["REPLACE_XZ"]; n < 2 {
			t.Fatalf("%s: only %d REPLACE_XZ ops", filter, n)
		}
		dir := t.TempDir()
		if _, err := p.ExtractAll(context.Background(), dir, nil, ExtractAllOptions{}); err != nil {
			t.Fatalf("%s: %v", filter, err)
		}
		got, _ := os.ReadFile(filepath.Join(dir, "vendor_boot.img"))
		if !bytes.Equal(got, a) {
			t.Fatalf("%s: extracted image differs", filter)
		}
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m := &Manifest{BlockSize: 4096, MinorVersion: 7, MaxTimestamp: 42, PartialUpdate: true, SecurityPatchLevel: "2024-01-05",
		HasSignatures: true, SignaturesOffset: 10, SignaturesSize: 20,
		Dynamic: &DynamicPartitionMetadata{Groups: []DynamicPartitionGroup{{Name: "g", Size: 9, Partitions: []string{"a", "b"}}}, SnapshotEnabled: true, VABCEnabled: true, VABCCompressionParam: "lz4", COWVersion: 3},
		Partitions: []PartitionUpdate{{Name: "a", FilesystemType: "ext4", Version: "v1",
			OldInfo: &PartitionInfo{Size: 1, Hash: []byte{1}}, NewInfo: &PartitionInfo{Size: 2, Hash: []byte{2}},
			Operations: []Operation{{Type: OpSourceBSDiff, HasData: true, DataOffset: 5, DataLength: 6,
				SrcExtents: []Extent{{1, 2}}, DstExtents: []Extent{{3, 4}, {7, 8}}, SrcLength: 11, DstLength: 12,
				DataSHA256: []byte{9}, SrcSHA256: []byte{10}}}}}}
	got, err := DecodeManifest(m.Encode())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(m)
	b, _ := json.Marshal(got)
	if !bytes.Equal(a, b) {
		t.Fatalf("round trip:\n%s\n%s", a, b)
	}
}
