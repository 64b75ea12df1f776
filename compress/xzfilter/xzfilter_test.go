package xzfilter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
)

// codeLike returns n bytes that look like a mix of executables: a real ELF from the host (x86-64 here),
// synthetic ARM64 with many BL/ADRP instructions, ARM BL words, Thumb BL pairs, x86 CALL/JMP, and data.
func codeLike(t testing.TB, n int) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(1, uint64(n)))
	var out []byte
	for _, p := range []string{"/usr/bin/xz", "/bin/ls", "/bin/sh"} {
		if b, err := os.ReadFile(p); err == nil {
			out = append(out, b[:min(len(b), n/4)]...)
			break
		}
	}
	for len(out) < n {
		seg := make([]byte, 4096)
		switch r.IntN(5) {
		case 0: // ARM64: BL, ADRP (in and out of range), other instructions
			for i := 0; i < len(seg); i += 4 {
				var w uint32
				switch r.IntN(4) {
				case 0:
					w = 0x94000000 | r.Uint32()&0x03FFFFFF
				case 1:
					w = 0x90000000 | r.Uint32()&0x60FFFFFF
				default:
					w = r.Uint32()
				}
				binary.LittleEndian.PutUint32(seg[i:], w)
			}
		case 1: // ARM BL
			for i := 0; i < len(seg); i += 4 {
				w := r.Uint32()
				if r.IntN(3) == 0 {
					w = 0xEB000000 | w&0xFFFFFF
				}
				binary.LittleEndian.PutUint32(seg[i:], w)
			}
		case 2: // Thumb BL pairs
			for i := 0; i < len(seg); i += 2 {
				v := uint16(r.Uint32())
				if r.IntN(3) == 0 && i+4 <= len(seg) {
					binary.LittleEndian.PutUint16(seg[i:], 0xF000|v&0x7FF)
					binary.LittleEndian.PutUint16(seg[i+2:], 0xF800|uint16(r.Uint32())&0x7FF)
					i += 2
					continue
				}
				binary.LittleEndian.PutUint16(seg[i:], v)
			}
		case 3: // x86 CALL/JMP rel32 with near targets among other bytes
			for i := 0; i < len(seg); {
				if r.IntN(4) == 0 && i+5 <= len(seg) {
					seg[i] = 0xE8 + byte(r.IntN(2))
					binary.LittleEndian.PutUint32(seg[i+1:], uint32(int32(r.IntN(1<<20)-1<<19)))
					i += 5
					continue
				}
				seg[i] = byte(r.IntN(256))
				i++
			}
		default: // compressible text
			for i := range seg {
				seg[i] = "abcdefgh \n"[r.IntN(10)]
			}
		}
		out = append(out, seg...)
	}
	return out[:n]
}

func runXZ(t *testing.T, data []byte, args ...string) []byte {
	t.Helper()
	bin := validators.Tool(t, "xz")
	cmd := exec.Command(bin, append(args, "-c", "-T1")...)
	cmd.Stdin = bytes.NewReader(data)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("xz %v: %v: %s", args, err, errb.String())
	}
	return out.Bytes()
}

func decodeAll(t testing.TB, c Config, stream []byte) ([]byte, error) {
	t.Helper()
	r, err := c.NewReader(bytes.NewReader(stream))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestRealXZFilters(t *testing.T) {
	data := codeLike(t, 160<<10)
	cases := [][]string{
		{"--lzma2=preset=6"},
		{"--x86", "--lzma2=preset=6"},
		{"--arm", "--lzma2=preset=6"},
		{"--armthumb", "--lzma2=preset=6"},
		{"--arm64", "--lzma2=preset=6"},
		{"--arm64=start=4096", "--lzma2=preset=1", "--check=sha256"},
		{"--x86=start=17", "--lzma2=preset=1", "--check=crc32"},
		{"--delta=dist=4", "--lzma2=preset=1", "--check=none"},
		{"--delta=dist=256", "--arm64", "--lzma2=preset=1"},
		{"--arm64", "--lzma2=preset=6", "--block-size=40000"},
		{"--x86", "--lzma2=preset=2", "--block-size=65536", "--check=sha256"},
		{"--lzma2=preset=6", "--block-size=30000"},
	}
	for _, args := range cases {
		stream := runXZ(t, data, args...)
		got, err := decodeAll(t, Config{}, stream)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%v: output differs from input (%d vs %d bytes)", args, len(got), len(data))
		}
		if len(args) > 1 {
			continue
		}
		// The same with a tight limit (the dictionary shrinks to the output size).
		got, err = decodeAll(t, Config{Limit: int64(len(data))}, stream)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%v with Limit=len: %v", args, err)
		}
		if _, err := decodeAll(t, Config{Limit: int64(len(data)) - 1}, stream); !errors.Is(err, ErrLimit) {
			t.Fatalf("%v with Limit=len-1: got %v, want ErrLimit", args, err)
		}
	}
}

// TestFiltersChangeData makes sure the BCJ round trips above are not vacuous: each filter really rewrites
// many instructions of the sample, and our encoder and decoder invert each other.
func TestFiltersChangeData(t *testing.T) {
	data := codeLike(t, 256<<10)
	mk := map[string]func(bool) converter{
		"x86":      func(e bool) converter { return newX86(0, e) },
		"arm":      func(e bool) converter { return &arm{encode: e} },
		"armthumb": func(e bool) converter { return &armThumb{encode: e} },
		"arm64":    func(e bool) converter { return &arm64{encode: e} },
		"delta":    func(e bool) converter { return &delta{dist: 3, encode: e} },
	}
	for name, f := range mk {
		enc, err := io.ReadAll(newFilterReader(bytes.NewReader(data), f(true)))
		if err != nil {
			t.Fatal(err)
		}
		changed := 0
		for i := range data {
			if enc[i] != data[i] {
				changed++
			}
		}
		if changed < 1000 {
			t.Fatalf("%s: encoder changed only %d bytes of code-like data", name, changed)
		}
		// Decode through a reader that returns odd-sized pieces, to exercise the window carry-over.
		dec, err := io.ReadAll(newFilterReader(&oddReader{r: bytes.NewReader(enc)}, f(false)))
		if err != nil || !bytes.Equal(dec, data) {
			t.Fatalf("%s: decode(encode(x)) != x (%v)", name, err)
		}
	}
}

type oddReader struct {
	r io.Reader
	i int
}

func (o *oddReader) Read(p []byte) (int, error) {
	o.i++
	return o.r.Read(p[:min(len(p), 1+o.i*7%13)])
}

func TestMultiStreamAndPadding(t *testing.T) {
	a, b := codeLike(t, 100000), codeLike(t, 50000)
	s := append(runXZ(t, a, "--arm64", "--lzma2=preset=1"), 0, 0, 0, 0, 0, 0, 0, 0)
	s = append(s, runXZ(t, b, "--x86", "--lzma2=preset=1")...)
	got, err := decodeAll(t, Config{}, s)
	if err != nil || !bytes.Equal(got, append(append([]byte{}, a...), b...)) {
		t.Fatalf("two streams: %v", err)
	}
	// Padding that is not a multiple of four is invalid.
	bad := append(runXZ(t, a, "--lzma2=preset=1"), 0, 0)
	if _, err := decodeAll(t, Config{}, bad); !errors.Is(err, failure.ErrInvalid) {
		t.Fatalf("odd padding: %v", err)
	}
}

func TestUlikunitzStreams(t *testing.T) {
	data := codeLike(t, 60000)
	var buf bytes.Buffer
	w, err := xz.WriterConfig{CheckSum: xz.SHA256, BlockSize: 20000}.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	got, err := decodeAll(t, Config{}, buf.Bytes())
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ulikunitz stream: %v", err)
	}
}

func TestCorruptStreams(t *testing.T) {
	data := codeLike(t, 60000)
	stream := runXZ(t, data, "--arm64", "--lzma2=preset=6", "--block-size=20000")
	// Every truncation and a flipped byte at many offsets must fail cleanly (never panic, never succeed with
	// different data).
	for cut := 0; cut < len(stream); cut += 1 + cut/3 {
		if got, err := decodeAll(t, Config{}, stream[:cut]); err == nil {
			t.Fatalf("truncated at %d/%d decoded %d bytes without error", cut, len(stream), len(got))
		} else if !errors.Is(err, failure.ErrInvalid) {
			t.Fatalf("truncated at %d: error %v is not ErrInvalid", cut, err)
		}
	}
	for off := 0; off < len(stream); off += 1 + off/3 {
		bad := bytes.Clone(stream)
		bad[off] ^= 0x55
		got, err := decodeAll(t, Config{}, bad)
		if err == nil && !bytes.Equal(got, data) {
			t.Fatalf("flip at %d: decoded wrong data without error", off)
		}
		if err != nil && !errors.Is(err, failure.ErrInvalid) {
			t.Fatalf("flip at %d: error %v is not ErrInvalid", off, err)
		}
	}
	if _, err := decodeAll(t, Config{}, []byte("not xz at all")); !errors.Is(err, failure.ErrInvalid) {
		t.Fatalf("garbage: %v", err)
	}
}

func TestUnsupportedFilter(t *testing.T) {
	stream := runXZ(t, codeLike(t, 10000), "--sparc", "--lzma2=preset=0")
	_, err := decodeAll(t, Config{}, stream)
	var fe *FormatError
	if !errors.As(err, &fe) || !errors.Is(err, failure.ErrInvalid) {
		t.Fatalf("sparc: %v", err)
	}
}

func FuzzReader(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.xz")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err == nil {
			f.Add(b)
		}
	}
	var buf bytes.Buffer
	w, _ := xz.NewWriter(&buf)
	w.Write([]byte("hello hello hello hello"))
	w.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Config{Limit: 1 << 20}.NewReader(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, failure.ErrInvalid) {
				t.Fatalf("non-invalid error %v", err)
			}
			return
		}
		_, err = io.Copy(io.Discard, r)
		if err != nil && !errors.Is(err, failure.ErrInvalid) {
			t.Fatalf("non-invalid error %v", err)
		}
	})
}

// Found by FuzzReader: a block header size byte of 0xFF overflowed to a zero-sized header and panicked.
func TestBlockHeaderSizeFF(t *testing.T) {
	s := []byte{0xFD, '7', 'z', 'X', 'Z', 0, 0, 1, 0x69, 0x22, 0xDE, 0x36, 0xFF}
	if _, err := decodeAll(t, Config{}, s); !errors.Is(err, failure.ErrInvalid) {
		t.Fatalf("got %v", err)
	}
}
