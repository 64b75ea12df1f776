package bspatch

import (
	"bytes"
	"compress/bzip2"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/andybalholm/brotli"

	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
)

func oldNew(n int) ([]byte, []byte) {
	r := rand.New(rand.NewPCG(7, uint64(n)))
	old := make([]byte, n)
	for i := range old {
		old[i] = byte(r.IntN(40))
	}
	nw := bytes.Clone(old)
	for k := 0; k < 50; k++ { // sprinkle edits, an insertion and a deletion
		nw[r.IntN(len(nw))] ^= byte(r.IntN(255) + 1)
	}
	nw = append(nw[:n/3], append([]byte("inserted text that was not there before"), nw[n/3:]...)...)
	nw = append(nw[:n/2], nw[n/2+777:]...)
	return old, nw
}

// realPatch makes a BSDIFF40 patch with Debian's bsdiff.
func realPatch(t *testing.T, old, nw []byte) []byte {
	t.Helper()
	validators.Tool(t, "bsdiff")
	d := t.TempDir()
	o, n, p := filepath.Join(d, "old"), filepath.Join(d, "new"), filepath.Join(d, "patch")
	os.WriteFile(o, old, 0o644)
	os.WriteFile(n, nw, 0o644)
	validators.Run(t, "bsdiff", o, n, p)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// toBSDF2 re-encodes a BSDIFF40 patch's streams with the given compressors.
func toBSDF2(t testing.TB, patch []byte, comps [3]byte) []byte {
	t.Helper()
	h, err := ParseHeader(patch)
	if err != nil {
		t.Fatal(err)
	}
	body := patch[32:]
	parts := [][]byte{body[:h.CtrlLen], body[h.CtrlLen : h.CtrlLen+h.DiffLen], body[h.CtrlLen+h.DiffLen:]}
	out := append([]byte("BSDF2"), comps[:]...)
	out = append(out, make([]byte, 24)...)
	var lens [3]int64
	var enc [][]byte
	for i, p := range parts {
		raw, err := io.ReadAll(bzip2.NewReader(bytes.NewReader(p)))
		if err != nil {
			t.Fatal(err)
		}
		switch comps[i] {
		case Brotli:
			var b bytes.Buffer
			w := brotli.NewWriterLevel(&b, 9)
			w.Write(raw)
			w.Close()
			raw = b.Bytes()
		case BZ2:
			raw = p
		}
		lens[i] = int64(len(raw))
		enc = append(enc, raw)
	}
	PutOfftin(out[8:], lens[0])
	PutOfftin(out[16:], lens[1])
	PutOfftin(out[24:], h.NewSize)
	for _, e := range enc {
		out = append(out, e...)
	}
	return out
}

func TestDebianBsdiff(t *testing.T) {
	old, nw := oldNew(300000)
	patch := realPatch(t, old, nw)
	var out bytes.Buffer
	n, err := Apply(bytes.NewReader(old), int64(len(old)), patch, &out, 1<<30)
	if err != nil || n != int64(len(nw)) || !bytes.Equal(out.Bytes(), nw) {
		t.Fatalf("BSDIFF40: n=%d err=%v equal=%v", n, err, bytes.Equal(out.Bytes(), nw))
	}
	for _, comps := range [][3]byte{{Brotli, Brotli, Brotli}, {None, Brotli, BZ2}, {BZ2, None, None}} {
		p2 := toBSDF2(t, patch, comps)
		out.Reset()
		if _, err := Apply(bytes.NewReader(old), int64(len(old)), p2, &out, int64(len(nw))); err != nil || !bytes.Equal(out.Bytes(), nw) {
			t.Fatalf("BSDF2 %v: %v", comps, err)
		}
	}
	// The new size is bounded by the caller.
	if _, err := Apply(bytes.NewReader(old), int64(len(old)), patch, io.Discard, int64(len(nw))-1); !errors.Is(err, failure.ErrInvalid) {
		t.Fatalf("maxNew: %v", err)
	}
	// Damaged patches fail cleanly.
	for cut := 0; cut < len(patch); cut += 1 + cut/4 {
		if _, err := Apply(bytes.NewReader(old), int64(len(old)), patch[:cut], io.Discard, 1<<30); err == nil {
			t.Fatalf("truncated at %d applied", cut)
		} else if !errors.Is(err, failure.ErrInvalid) {
			t.Fatalf("truncated at %d: %v not ErrInvalid", cut, err)
		}
	}
}

func TestOfftin(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 1 << 40, -(1 << 40), 1<<63 - 1} {
		var b [8]byte
		PutOfftin(b[:], v)
		if got := offtin(b[:]); got != v {
			t.Fatalf("offtin(%d) = %d", v, got)
		}
	}
}

func FuzzBspatch(f *testing.F) {
	old := []byte("the quick brown fox jumps over the lazy dog, again and again")
	if b, err := os.ReadFile("testdata/small.bsdiff"); err == nil {
		f.Add(b)
	}
	var hdr [32]byte
	copy(hdr[:], "BSDF2\x00\x00\x00")
	PutOfftin(hdr[8:], 24)
	PutOfftin(hdr[16:], 4)
	PutOfftin(hdr[24:], 10)
	ctrl := make([]byte, 24)
	PutOfftin(ctrl[0:], 4)
	PutOfftin(ctrl[8:], 6)
	PutOfftin(ctrl[16:], -3)
	f.Add(append(append(hdr[:], ctrl...), []byte("\x01\x01\x01\x01extra!")...))
	f.Fuzz(func(t *testing.T, patch []byte) {
		n, err := Apply(bytes.NewReader(old), int64(len(old)), patch, io.Discard, 1<<20)
		if err != nil && !errors.Is(err, failure.ErrInvalid) {
			t.Fatalf("error %v is not ErrInvalid", err)
		}
		if n > 1<<20 {
			t.Fatalf("wrote %d bytes past the limit", n)
		}
	})
}
