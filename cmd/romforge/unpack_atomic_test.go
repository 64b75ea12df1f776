package main

import (
	"archive/zip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/demo/sample"
	"github.com/romforge/romforge/internal/safeio"
)

// Unpack output appears only when complete: into a folder that already holds other files the images and
// unpack.json are moved in (unpack.json naming their final paths), and a failing unpack adds nothing and
// leaves no hidden folder beside it.
func TestUnpackOutputIsAtomic(t *testing.T) {
	dir := t.TempDir()
	rom := filepath.Join(dir, "rom.zip")
	f, err := os.Create(rom)
	if err != nil {
		t.Fatal(err)
	}
	if err := sample.ArmaniROM(context.Background(), f, sample.Options{SystemSize: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	f.Close()

	out := filepath.Join(dir, "out")
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644)
	code, stdout, stderr := runCLI(t, "unpack", rom, "-o", out, "--json")
	if code != 0 {
		t.Fatalf("unpack: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var res unpackResult
	b, err := os.ReadFile(filepath.Join(out, "unpack.json"))
	if err != nil || json.Unmarshal(b, &res) != nil {
		t.Fatalf("unpack.json: %v", err)
	}
	if len(res.Partitions) == 0 {
		t.Fatal("no partitions")
	}
	for _, p := range res.Partitions {
		if filepath.Dir(p.File) != out {
			t.Errorf("%s recorded at %s, not in %s", p.Name, p.File, out)
		}
		if _, err := os.Stat(p.File); err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(out, "notes.txt")); string(b) != "mine" {
		t.Error("a file already in the output folder was lost")
	}

	// A ROM whose system data is cut short: the boot image would unpack fine, but nothing may appear.
	bad := filepath.Join(dir, "bad.zip")
	truncateEntry(t, rom, bad, "system.new.dat")
	out2 := filepath.Join(dir, "out2")
	code, stdout, stderr = runCLI(t, "unpack", bad, "-o", out2)
	if code == 0 {
		t.Fatalf("unpack of a damaged ROM succeeded\n%s", stdout)
	}
	t.Logf("damaged ROM: exit %d: %s", code, strings.TrimSpace(stderr))
	if _, err := os.Stat(out2); !os.IsNotExist(err) {
		ents, _ := os.ReadDir(out2)
		t.Fatalf("failed unpack left %s with %v (%s)", out2, ents, stderr)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if safeio.IsTempName(e.Name()) {
			t.Errorf("failed unpack left %s", e.Name())
		}
	}
}

// truncateEntry copies a zip, cutting the entry whose name contains suffix to a tenth of its size.
func truncateEntry(t *testing.T, src, dst, suffix string) {
	t.Helper()
	zr, err := zip.OpenReader(src)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	found := false
	for _, e := range zr.File {
		rc, err := e.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if strings.Contains(e.Name, suffix) {
			b, found = b[:len(b)/10], true
		}
		w, _ := zw.Create(e.Name)
		w.Write(b)
	}
	zw.Close()
	if !found {
		t.Fatalf("no entry named like %s", suffix)
	}
}
