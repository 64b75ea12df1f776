package payload

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/romforge/romforge/image"
)

// testImage returns n bytes that look like a partition: text, code-like words, zero runs and random data.
func testImage(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 99))
	b := make([]byte, n)
	for off := 0; off < n; {
		k := min(n-off, 4096*(1+r.IntN(24)))
		seg := b[off : off+k]
		switch r.IntN(5) {
		case 0: // zeros
		case 1:
			for i := range seg {
				seg[i] = "romforge partition text\n"[r.IntN(24)]
			}
		case 2: // ARM64-ish words
			for i := 0; i+4 <= len(seg); i += 4 {
				w := r.Uint32()
				if r.IntN(3) == 0 {
					w = 0x94000000 | w&0xFFFF
				}
				binary.LittleEndian.PutUint32(seg[i:], w)
			}
		case 3:
			for i := range seg {
				seg[i] = byte(r.Uint32())
			}
		default:
			for i := range seg {
				seg[i] = byte(i / 64)
			}
		}
		off += k
	}
	return b
}

func memImage(b []byte) image.Image { return image.New(bytes.NewReader(b), int64(len(b))) }

// writePayload writes parts with opt to a file in a temp dir and returns its path.
func writePayload(t testing.TB, parts []WritePartition, opt WriteOptions) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "payload.bin")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if opt.TempDir == "" {
		opt.TempDir = filepath.Dir(path)
	}
	if err := Write(context.Background(), f, parts, opt); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func externalXZ(t testing.TB, args ...string) func(OpType, []byte) ([]byte, error) {
	return func(ty OpType, data []byte) ([]byte, error) {
		if ty != OpReplaceXZ {
			return nil, nil
		}
		cmd := exec.Command("xz", append(args, "-c", "-T1")...)
		cmd.Stdin = bytes.NewReader(data)
		return cmd.Output()
	}
}

func mustOpen(t testing.TB, path string) *Payload {
	t.Helper()
	p, c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p
}

func sameFile(t *testing.T, got, want string) {
	t.Helper()
	a, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("%s (%d bytes) differs from %s (%d bytes)", got, len(a), want, len(b))
	}
}
