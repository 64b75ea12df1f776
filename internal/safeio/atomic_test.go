package safeio

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestFileCommitAbort(t *testing.T) {
	dir := t.TempDir()
	final := filepath.Join(dir, "out.img")
	f, err := Create(final)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(final); !os.IsNotExist(err) {
		t.Fatalf("final name exists before Commit: %v", err)
	}
	if n := names(t, dir); len(n) != 1 || !IsTempName(n[0]) {
		t.Fatalf("expected one temporary file, got %q", n)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Abort() // after Commit: no effect
	b, err := os.ReadFile(final)
	if err != nil || string(b) != "hello" {
		t.Fatalf("got %q, %v", b, err)
	}
	if n := names(t, dir); !slices.Equal(n, []string{"out.img"}) {
		t.Fatalf("left %q", n)
	}

	g, err := Create(filepath.Join(dir, "other.img"))
	if err != nil {
		t.Fatal(err)
	}
	g.Write([]byte("partial"))
	g.Abort()
	if n := names(t, dir); !slices.Equal(n, []string{"out.img"}) {
		t.Fatalf("Abort left %q", n)
	}
}

// The mode comes from the umask like other tools' outputs, not a fixed 0600 of os.CreateTemp.
func TestFileModeFollowsUmask(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no umask")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "a")
	if err := WriteFile(p, []byte("x"), 0o666); err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(dir, "probe")
	pf, err := os.OpenFile(probe, os.O_CREATE|os.O_WRONLY, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	pf.Close()
	want, _ := os.Stat(probe)
	got, _ := os.Stat(p)
	if got.Mode().Perm() != want.Mode().Perm() {
		t.Fatalf("mode %v, a plain create gives %v", got.Mode().Perm(), want.Mode().Perm())
	}
	if err := WriteFile(filepath.Join(dir, "s.sh"), []byte("#!/bin/sh\n"), 0o777); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, "s.sh"))
	if st.Mode().Perm()&0o100 == 0 {
		t.Fatalf("script not executable: %v", st.Mode())
	}
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(filepath.Join(dir, "big.img"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := CreateDir(filepath.Join(dir, "tree"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Path(), "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	RemoveTemps()
	if n := names(t, dir); len(n) != 0 {
		t.Fatalf("RemoveTemps left %q", n)
	}
	f.Abort()
	d.Abort()
}

// Randomized: whatever mix of existing files the target holds, Commit leaves exactly the union (new
// files winning), the manifest named last is present, and no temporary directory remains; Abort leaves
// the target as it was.
func TestDirCommitProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(19))
	for i := range 40 {
		root := t.TempDir()
		final := filepath.Join(root, "out")
		existing := map[string]string{}
		switch rng.Intn(3) {
		case 0: // absent
		case 1:
			os.Mkdir(final, 0o755)
		case 2:
			os.Mkdir(final, 0o755)
			for j := range rng.Intn(4) + 1 {
				n := []string{"a.img", "b.img", "keep.txt", "unpack.json"}[j]
				existing[n] = "old"
				os.WriteFile(filepath.Join(final, n), []byte("old"), 0o644)
			}
		}
		d, err := CreateDir(final)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for k, v := range existing {
			want[k] = v
		}
		for _, n := range []string{"a.img", "c.img", "unpack.json"}[:rng.Intn(3)+1] {
			os.WriteFile(filepath.Join(d.Path(), n), []byte("new"), 0o644)
			want[n] = "new"
		}
		if rng.Intn(4) == 0 {
			d.Abort()
			want = existing
		} else if err := d.Commit("unpack.json"); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		got := map[string]string{}
		ents, _ := os.ReadDir(final)
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(final, e.Name()))
			got[e.Name()] = string(b)
		}
		if len(got) != len(want) {
			t.Fatalf("case %d: got %v want %v", i, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("case %d: %s = %q, want %q", i, k, got[k], v)
			}
		}
		for _, n := range names(t, root) {
			if n != "out" {
				t.Fatalf("case %d: left %s beside the output", i, n)
			}
		}
	}
}

func TestDirCommitRefusesFileInTheWay(t *testing.T) {
	root := t.TempDir()
	final := filepath.Join(root, "out")
	os.WriteFile(final, []byte("x"), 0o644)
	d, err := CreateDir(final)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(); err == nil {
		t.Fatal("Commit over a file succeeded")
	}
	if n := names(t, root); !slices.Equal(n, []string{"out"}) {
		t.Fatalf("failed Commit left %q", n)
	}
}

// A killed run's temporaries (pid no longer running) are removed by the next run writing the same output;
// those of running processes are kept.
func TestStaleTempsSwept(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("liveness of a pid is not checked on Windows: leftovers are kept")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid // reaped: no such process (unless the pid was reused at once)
	dir := t.TempDir()
	final := filepath.Join(dir, "system.img")
	staleFile := filepath.Join(dir, fmt.Sprintf(".system.img.tmp-%d-abc", dead))
	liveFile := filepath.Join(dir, fmt.Sprintf(".system.img.tmp-%d-def", os.Getppid()))
	other := filepath.Join(dir, fmt.Sprintf(".vendor.img.tmp-%d-abc", dead))
	for _, p := range []string{staleFile, liveFile, other} {
		os.WriteFile(p, []byte("partial"), 0o644)
	}
	f, err := Create(final)
	if err != nil {
		t.Fatal(err)
	}
	f.Abort()
	if _, err := os.Stat(staleFile); !os.IsNotExist(err) {
		t.Error("a dead process's temporary survived")
	}
	for _, p := range []string{liveFile, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", filepath.Base(p), err)
		}
	}

	staleDir := filepath.Join(dir, fmt.Sprintf(".out.tmp-%d-0123", dead))
	os.MkdirAll(filepath.Join(staleDir, "images"), 0o755)
	d, err := CreateDir(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	d.Abort()
	if _, err := os.Stat(staleDir); !os.IsNotExist(err) {
		t.Error("a dead process's temporary folder survived")
	}
}
