package avb

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// TestPairHasherMatchesSHA256: the two-stream SHA-256 gives crypto/sha256's digests for every salt
// length around the 64-byte block boundaries and for the dm-verity block sizes.
func TestPairHasherMatchesSHA256(t *testing.T) {
	if !haveSHA256x2 {
		t.Skip("this CPU has no SHA extensions: the pair hasher is not used")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, bs := range []int{64, 65, 100, 512, 1024, 4096, 4100} {
		for saltLen := 0; saltLen <= 130; saltLen++ {
			salt := make([]byte, saltLen)
			for i := range salt {
				salt[i] = byte(r.Uint32())
			}
			a, b := make([]byte, bs), make([]byte, bs)
			for i := range a {
				a[i], b[i] = byte(r.Uint32()), byte(r.Uint32())
			}
			p := newPairHasher(salt, bs)
			var o1, o2 [32]byte
			for range 2 { // the buffers are reused: a second round must not see the first
				p.sum(a, b, o1[:], o2[:])
				w1 := sha256.Sum256(append(append([]byte{}, salt...), a...))
				w2 := sha256.Sum256(append(append([]byte{}, salt...), b...))
				if o1 != w1 || o2 != w2 {
					t.Fatalf("block %d, salt %d: digests differ from crypto/sha256", bs, saltLen)
				}
				a, b = b, bytes.Repeat([]byte{byte(saltLen)}, bs)
			}
		}
	}
}

func BenchmarkPairHasher(b *testing.B) {
	if !haveSHA256x2 {
		b.Skip("no SHA extensions")
	}
	salt := make([]byte, 32)
	x, y := make([]byte, 4096), make([]byte, 4096)
	p := newPairHasher(salt, 4096)
	var o1, o2 [32]byte
	b.SetBytes(2 * 4096)
	for b.Loop() {
		p.sum(x, y, o1[:], o2[:])
	}
}

func BenchmarkSHA256Single(b *testing.B) {
	salt := make([]byte, 32)
	x := make([]byte, 4096)
	h := sha256.New()
	var out []byte
	b.SetBytes(4096)
	for b.Loop() {
		h.Reset()
		h.Write(salt)
		h.Write(x)
		out = h.Sum(out[:0])
	}
}

func FuzzPairHasher(f *testing.F) {
	f.Add([]byte("salt"), bytes.Repeat([]byte{1}, 64), byte(7))
	f.Add([]byte{}, bytes.Repeat([]byte("romforge"), 512), byte(0))
	f.Fuzz(func(t *testing.T, salt, a []byte, x byte) {
		if !haveSHA256x2 || len(a) < 64 || len(a) > 1<<16 {
			return
		}
		b := bytes.Clone(a)
		b[int(x)%len(b)] ^= 0x5a
		var o1, o2 [32]byte
		newPairHasher(salt, len(a)).sum(a, b, o1[:], o2[:])
		if o1 != sha256.Sum256(append(bytes.Clone(salt), a...)) || o2 != sha256.Sum256(append(bytes.Clone(salt), b...)) {
			t.Fatalf("salt %d, block %d: digests differ from crypto/sha256", len(salt), len(a))
		}
	})
}
