package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestUnpackFolderFollowsTheArchive: another archive saved under the same name gets its own unpacking.
func TestUnpackFolderFollowsTheArchive(t *testing.T) {
	cache, dir := t.TempDir(), t.TempDir()
	rom := filepath.Join(dir, "spes_images_V14.tgz")
	os.WriteFile(rom, []byte("first rom"), 0o644)
	a, err := unpackFolder(cache, rom)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := unpackFolder(cache, rom); again != a {
		t.Fatalf("the same archive maps to %s and %s", a, again)
	}
	os.WriteFile(rom, []byte("second rom, same name"), 0o644)
	os.Chtimes(rom, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	b, _ := unpackFolder(cache, rom)
	if b == a {
		t.Fatalf("a different archive under the same name reuses %s", a)
	}
	if filepath.Dir(filepath.Dir(a)) != cache {
		t.Fatalf("%s is not under the cache %s", a, cache)
	}
}
