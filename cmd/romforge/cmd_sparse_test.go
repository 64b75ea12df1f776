package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/internal/validators"
)

func TestSparseCLIRoundTrip(t *testing.T) {
	dir := t.TempDir()
	raw := make([]byte, 3<<20+100)
	for i := 0; i < 1<<20; i++ {
		raw[i] = byte(i * 7 / 3)
	}
	for i := 2 << 20; i < 2<<20+4096; i += 4 {
		copy(raw[i:], []byte{1, 2, 3, 4})
	}
	in := filepath.Join(dir, "in.raw")
	os.WriteFile(in, raw, 0o644)
	sp := filepath.Join(dir, "out.simg")
	code, stdout, stderr := runCLI(t, "sparse", "to-sparse", in, sp, "--json")
	if code != 0 {
		t.Fatalf("to-sparse exit %d: %s", code, stderr)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res["sparse_size"] == nil {
		t.Fatalf("to-sparse JSON %q: %v", stdout, err)
	}
	if validators.Have("simg2img") {
		validators.Run(t, "simg2img", sp, filepath.Join(dir, "theirs.raw"))
		theirs, _ := os.ReadFile(filepath.Join(dir, "theirs.raw"))
		if !bytes.Equal(theirs[:len(raw)], raw) {
			t.Fatal("simg2img of our to-sparse output differs from the input")
		}
	}
	back := filepath.Join(dir, "back.raw")
	if code, _, stderr := runCLI(t, "sparse", "to-raw", sp, back); code != 0 {
		t.Fatalf("to-raw exit %d: %s", code, stderr)
	}
	got, _ := os.ReadFile(back)
	if len(got) != 3<<20+4096 || !bytes.Equal(got[:len(raw)], raw) || bytes.Count(got[len(raw):], []byte{0}) != len(got)-len(raw) {
		t.Fatalf("to-raw gave %d bytes, not the zero-padded input", len(got))
	}
	pieces := filepath.Join(dir, "pieces")
	code, stdout, stderr = runCLI(t, "sparse", "split", sp, "--max", "1M", "-o", pieces, "--json")
	if code != 0 {
		t.Fatalf("split exit %d: %s", code, stderr)
	}
	var sres struct {
		Pieces []struct {
			Path string `json:"path"`
			Size int64  `json:"size"`
		} `json:"pieces"`
	}
	if err := json.Unmarshal([]byte(stdout), &sres); err != nil || len(sres.Pieces) < 2 {
		t.Fatalf("split JSON %q: %v", stdout, err)
	}
	for _, p := range sres.Pieces {
		if st, err := os.Stat(p.Path); err != nil || st.Size() != p.Size || p.Size > 1<<20 {
			t.Fatalf("piece %+v: %v", p, err)
		}
	}
	if validators.Have("simg2img") {
		var args []string
		for _, p := range sres.Pieces {
			args = append(args, p.Path)
		}
		validators.Run(t, "simg2img", append(args, filepath.Join(dir, "joined"))...)
		joined, _ := os.ReadFile(filepath.Join(dir, "joined"))
		if !bytes.Equal(joined, got) {
			t.Fatal("simg2img of the split pieces differs")
		}
	}
}

// Corrupt input exits 4 and leaves no output behind; a bad --max is a usage error.
func TestSparseCLIErrors(t *testing.T) {
	dir := t.TempDir()
	raw := bytes.Repeat([]byte("romforge"), 1<<16)
	in := filepath.Join(dir, "in.raw")
	os.WriteFile(in, raw, 0o644)
	sp := filepath.Join(dir, "in.simg")
	if code, _, stderr := runCLI(t, "sparse", "to-sparse", in, sp, "--block-size", "1K"); code != 0 {
		t.Fatalf("to-sparse: %d %s", code, stderr)
	}
	full, _ := os.ReadFile(sp)
	bad := filepath.Join(dir, "bad.simg")
	os.WriteFile(bad, full[:len(full)-10], 0o644)
	out := filepath.Join(dir, "out.raw")
	code, _, stderr := runCLI(t, "sparse", "to-raw", bad, out)
	if code != 4 || !strings.Contains(stderr, "sparse:") {
		t.Fatalf("truncated input: exit %d, stderr %q", code, stderr)
	}
	code, _, _ = runCLI(t, "sparse", "to-raw", in, out) // a raw file is not a sparse image
	if code != 4 {
		t.Fatalf("raw input to to-raw: exit %d", code)
	}
	if code, _, _ := runCLI(t, "sparse", "split", bad, "--max", "1M", "-o", filepath.Join(dir, "p")); code != 4 {
		t.Fatalf("split of corrupt input: exit %d", code)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "in.raw" && e.Name() != "in.simg" && e.Name() != "bad.simg" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if code, _, _ := runCLI(t, "sparse", "split", in, "--max", "lots", "-o", dir); code != 2 {
		t.Fatalf("bad --max: exit %d", code)
	}
}

func TestSparseParseSize(t *testing.T) {
	for in, want := range map[string]int64{"268435456": 268435456, "0x10000000": 268435456, "256M": 256 << 20,
		"1G": 1 << 30, "1g": 1 << 30, "64KiB": 64 << 10, "512k": 512 << 10, "100B": 100, "0xAB": 0xab} {
		if got, err := sparseParseSize(in); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-5", "1X", "M", "99999999999T"} {
		if _, err := sparseParseSize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
