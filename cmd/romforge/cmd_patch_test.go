package main

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/patches/miuitest"
)

// writeTree materialises a tree on disk (contents and modes; owners need root and are not needed here).
func writeTree(t *testing.T, tr tree.Tree, dir string) {
	t.Helper()
	err := tree.Walk(tr, func(name string, m tree.Meta) error {
		p := filepath.Join(dir, filepath.FromSlash(name))
		switch {
		case m.Mode.IsDir():
			return os.MkdirAll(p, 0o755)
		case m.Mode&fs.ModeSymlink != 0:
			return os.Symlink(m.Target, p)
		}
		f, err := tr.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil {
			return err
		}
		return os.WriteFile(p, b, m.Mode.Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPatchAndAuditDirectory(t *testing.T) {
	dir := t.TempDir()
	for name, tr := range miuitest.Trees(miuitest.Options{}) {
		writeTree(t, tr, filepath.Join(dir, name))
	}
	code, out, _ := runCLI(t, "audit", dir, "--set", "xiaomi-hardened")
	if code != exitFindings || !strings.Contains(out, "package com.xiaomi.xmsf") {
		t.Fatalf("audit before: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "patch", "--dry-run", dir, "--set", "xiaomi-hardened", "--json")
	if code != 0 || !strings.Contains(out, `"dry_run": true`) {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "system/app/XMSF/XMSF.apk")); err != nil {
		t.Fatal("dry run removed files")
	}
	code, out, errs := runCLI(t, "patch", dir, "-s", "xiaomi-hardened")
	if code != 0 || !strings.Contains(out, "patched:") {
		t.Fatalf("patch: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = runCLI(t, "--json", "audit", dir)
	if code != 0 || !strings.Contains(out, `"findings": []`) && !strings.Contains(out, `"findings": null`) {
		t.Fatalf("audit after: exit %d\n%s", code, out)
	}
	if code, _, _ := runCLI(t, "patch", dir, "--set", "no-such-set"); code != exitUsage {
		t.Fatalf("unknown set: exit %d", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("name: b\nsteps:\n  - kind: nope\n"), 0o644)
	if code, _, errs := runCLI(t, "patch", dir, "--set", bad); code != exitInvalid || !strings.Contains(errs, "bad.yaml:3") {
		t.Fatalf("bad set: exit %d %s", code, errs)
	}
}
