// Command genpayload makes a benchmark payload.bin with romforge's payload writer: partitions of
// real-looking content (text, code-like words, random and zero runs; one dominant "system" partition) in
// 2 MiB operations of mixed REPLACE_XZ (half with the ARM64 BCJ filter, as HyperOS does), REPLACE_BZ,
// ZSTD, REPLACE and ZERO. Blobs are compressed with the C tools (xz, bzip2, zstd) for speed, and each
// type's blobs are also dumped concatenated (blobs.xz, blobs.bz2, blobs.zst) so the C decompressors can be
// timed on exactly the same data. With -decode DIR it instead times romforge's Go decoders on those files,
// one after another on one core.
//
// It is a benchmark tool, kept out of the romforge binary.
package main

import (
	"bytes"
	"compress/bzip2"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/romforge/romforge/compress/xzfilter"
	"github.com/romforge/romforge/image/payload"
	"github.com/romforge/romforge/scripts/bench/internal/benchgen"
)

func main() {
	size := flag.String("size", "256M", "total partition bytes (K/M/G suffix)")
	out := flag.String("out", "", "output directory")
	preset := flag.Int("xz-preset", 6, "xz preset for REPLACE_XZ blobs")
	decode := flag.String("decode", "", "time the Go decoders on DIR/blobs.* instead")
	flag.Parse()
	if *decode != "" {
		if err := decodeBlobs(*decode); err != nil {
			fmt.Fprintln(os.Stderr, "genpayload:", err)
			os.Exit(1)
		}
		return
	}
	n, err := benchgen.ParseSize(*size)
	if err != nil || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: genpayload -size 2G -out DIR | genpayload -decode DIR")
		os.Exit(2)
	}
	if err := generate(n, *out, *preset); err != nil {
		fmt.Fprintln(os.Stderr, "genpayload:", err)
		os.Exit(1)
	}
}

const opSize = 2 << 20

// content is a deterministic partition image computed on demand, chunk by chunk (never held whole).
type content struct {
	seed uint64
	size int64
}

func (c content) Size() int64 { return c.size }

// kind of the opSize chunk i: what the writer should make of it.
func (c content) kind(i int64) int {
	r := rand.New(rand.NewPCG(c.seed, uint64(i)))
	return r.IntN(20)
}

func (c content) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for len(p) > 0 && off < c.size {
		i := off / opSize
		chunk := c.chunk(i)
		k := copy(p, chunk[off-i*opSize:])
		p, off, n = p[k:], off+int64(k), n+k
	}
	if len(p) > 0 {
		return n, io.EOF
	}
	return n, nil
}

func (c content) chunk(i int64) []byte {
	n := min(int64(opSize), c.size-i*opSize)
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(c.seed^0x5bd1e995, uint64(i)))
	switch k := c.kind(i); {
	case k < 2: // zeros
	case k < 4: // random (stays REPLACE)
		for j := 0; j+8 <= len(b); j += 8 {
			binary.LittleEndian.PutUint64(b[j:], r.Uint64())
		}
	case k < 12: // ARM64-like code: instructions from a small vocabulary plus BL/ADRP with nearby targets
		vocab := make([]uint32, 512)
		for v := range vocab {
			vocab[v] = r.Uint32()
		}
		for j := 0; j+4 <= len(b); j += 4 {
			var w uint32
			switch x := r.IntN(10); {
			case x == 0:
				w = 0x94000000 | uint32(r.IntN(1<<16)-(1<<15))&0x03FFFFFF
			case x == 1:
				w = 0x90000000 | uint32(r.IntN(32))
			default:
				w = vocab[r.IntN(len(vocab))&(r.IntN(len(vocab))|0x3F)]
			}
			binary.LittleEndian.PutUint32(b[j:], w)
		}
	default: // text-like (config, XML, dex strings)
		words := []string{"android", "xiaomi", "com.miui", "permission", "<item name=", "true", "false", "0x", "service", "\n", " ", "system/app", "lib64", "ro.build"}
		j := 0
		for j < len(b) {
			w := words[r.IntN(len(words))]
			if r.IntN(8) == 0 {
				w = strconv.Itoa(r.IntN(100000))
			}
			j += copy(b[j:], w)
		}
	}
	return b
}

type dumper struct {
	mu    sync.Mutex
	files map[payload.OpType]*os.File
}

func runTool(data []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(data)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %v: %s", name, err, errb.String())
	}
	return out.Bytes(), nil
}

func generate(total int64, dir string, preset int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	d := &dumper{files: map[payload.OpType]*os.File{}}
	for t, ext := range map[payload.OpType]string{payload.OpReplaceXZ: "xz", payload.OpReplaceBZ: "bz2", payload.OpZSTD: "zst"} {
		f, err := os.Create(filepath.Join(dir, "blobs."+ext))
		if err != nil {
			return err
		}
		defer f.Close()
		d.files[t] = f
	}
	// One dominant partition, as in real ROMs.
	parts := []payload.WritePartition{
		{Name: "system", Image: content{1, total * 80 / 100 / 4096 * 4096}},
		{Name: "vendor", Image: content{2, total * 15 / 100 / 4096 * 4096}},
		{Name: "boot", Image: content{3, total * 5 / 100 / 4096 * 4096}},
	}
	choose := func(part string, i int, data []byte) payload.OpType {
		c := content{}
		for _, p := range parts {
			if p.Name == part {
				c = p.Image.(content)
			}
		}
		switch k := c.kind(int64(i)); {
		case k < 2:
			return payload.OpZero
		case k < 4:
			return payload.OpReplace
		case k < 12:
			return payload.OpReplaceXZ
		case k < 16:
			return payload.OpZSTD
		default:
			return payload.OpReplaceBZ
		}
	}
	compress := func(t payload.OpType, data []byte) ([]byte, error) {
		var b []byte
		var err error
		switch t {
		case payload.OpReplaceXZ:
			args := []string{fmt.Sprintf("--lzma2=preset=%d", preset), "-c", "-T1"}
			if looksARM64(data) {
				args = append([]string{"--arm64"}, args...)
			}
			b, err = runTool(data, "xz", args...)
		case payload.OpReplaceBZ:
			b, err = runTool(data, "bzip2", "-9", "-c")
		case payload.OpZSTD:
			b, err = runTool(data, "zstd", "-3", "-c", "-q")
		default:
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if len(b) < len(data) { // what the writer will keep; the dump must hold the same blobs
			d.mu.Lock()
			_, err = d.files[t].Write(b)
			d.mu.Unlock()
		}
		return b, err
	}
	f, err := os.Create(filepath.Join(dir, "payload.bin"))
	if err != nil {
		return err
	}
	start := time.Now()
	err = payload.Write(context.Background(), f, parts, payload.WriteOptions{OpSize: opSize, Choose: choose, Compress: compress,
		Workers: runtime.GOMAXPROCS(0), TempDir: dir, ZeroOps: true, MaxTimestamp: 1700000000, SecurityPatchLevel: "2024-01-01"})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	st, _ := os.Stat(f.Name())
	fmt.Printf("generated %s: %d bytes of partitions in %d bytes of payload (%.1fs)\n", f.Name(), total, st.Size(), time.Since(start).Seconds())
	p, c, err := payload.Open(f.Name())
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Printf("operations: %v\n", p.Info().OpCounts)
	return nil
}

// looksARM64 says whether a chunk is the ARM64-like kind (many BL opcodes), so xz gets --arm64 for it.
func looksARM64(b []byte) bool {
	bl := 0
	for j := 0; j+4 <= len(b) && j < 64<<10; j += 4 {
		if b[j+3]&0xFC == 0x94 {
			bl++
		}
	}
	return bl > 1000
}

func decodeBlobs(dir string) error {
	runtime.GOMAXPROCS(1)
	buf := make([]byte, 1<<20)
	var total time.Duration
	for _, ext := range []string{"xz", "bz2", "zst"} {
		f, err := os.Open(filepath.Join(dir, "blobs."+ext))
		if err != nil {
			return err
		}
		start, cpu0 := time.Now(), cpuTime()
		var r io.Reader
		switch ext {
		case "xz":
			r, err = xzfilter.NewReader(f)
		case "bz2":
			r = bzip2.NewReader(f)
		case "zst":
			var z *zstd.Decoder
			z, err = zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
			r = z
		}
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(io.Discard, r, buf)
		if err != nil {
			return fmt.Errorf("blobs.%s: %w", ext, err)
		}
		el, cpu := time.Since(start), cpuTime()-cpu0
		total += el
		fmt.Printf("go-decode %-4s %8.3fs wall %8.3fs cpu  %7.1f MB/s per cpu-second (%d bytes out)\n", ext, el.Seconds(), cpu.Seconds(), float64(n)/cpu.Seconds()/1e6, n)
		f.Close()
	}
	fmt.Printf("go-decode all  %8.3fs\n", total.Seconds())
	return nil
}
