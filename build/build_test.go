package build

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/bundle"
	"github.com/romforge/romforge/demo/sample"
	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
	"github.com/romforge/romforge/patches"
)

func device(t *testing.T, name string) *devices.Device {
	cat, _ := devices.Builtin()
	d, err := cat.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func armaniROM(t *testing.T, dev string) string {
	p := filepath.Join(t.TempDir(), "lineage-14.1-armani.zip")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := sample.ArmaniROM(context.Background(), f, sample.Options{SystemSize: 32 << 20, Device: dev}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

func hardened(t *testing.T) []*patches.Set {
	s, err := patches.Load("xiaomi-hardened")
	if err != nil {
		t.Fatal(err)
	}
	return []*patches.Set{s}
}

func TestArmaniBuildReproducibleAndClean(t *testing.T) {
	rom := armaniROM(t, "armani")
	var sums [2]map[string]string
	var outs [2]string
	for i := range sums {
		out := filepath.Join(t.TempDir(), "bundle")
		res, err := Run(context.Background(), Options{Device: device(t, "armani"), Input: rom, Sets: hardened(t), Out: out, Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Before.Clean() {
			t.Fatal("the sample ROM audited clean before patching")
		}
		if !res.After.Clean() {
			t.Fatalf("after patching: %v", res.After.Findings)
		}
		sums[i] = map[string]string{}
		filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				s, _ := fileSHA256(p)
				rel, _ := filepath.Rel(out, p)
				sums[i][rel] = s
			}
			return nil
		})
		outs[i] = out
	}
	for _, want := range []string{"manifest.json", "flash.sh", "flash.bat", "images/system.img", "images/boot.img", "romforge-armani-recovery.zip"} {
		if sums[0][want] == "" {
			t.Errorf("bundle lacks %s (has %v)", want, sums[0])
		}
	}
	for k, v := range sums[0] {
		if sums[1][k] != v {
			t.Errorf("%s differs between two builds: not reproducible", k)
		}
	}
	m, err := bundle.Read(outs[0])
	if err != nil {
		t.Fatal(err)
	}
	var sys bundle.Image
	for _, im := range m.Images {
		if im.Partition == "system" {
			sys = im
		}
	}
	if !sys.Modified || sys.Format != "ext4" || sys.Size != 32<<20 {
		t.Fatalf("system image record %+v", sys)
	}
	img := filepath.Join(outs[0], "images/system.img")
	validators.Run(t, validators.Tool(t, "e2fsck"), "-fn", img)
	if os.Geteuid() == 0 {
		mnt := t.TempDir()
		if out, err := exec.Command("mount", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
			t.Logf("mount unavailable: %v %s", err, out)
		} else {
			defer exec.Command("umount", mnt).Run()
			if _, err := os.Stat(filepath.Join(mnt, "app/XMSF")); err == nil {
				t.Fatal("mounted system still has XMSF")
			}
			hosts, _ := os.ReadFile(filepath.Join(mnt, "etc/hosts"))
			if !strings.Contains(string(hosts), "0.0.0.0 api.xmpush.xiaomi.com") {
				t.Fatalf("mounted hosts:\n%s", hosts)
			}
		}
	}
}

func TestBuildRefusals(t *testing.T) {
	// A ROM for another device: refused, nothing left behind.
	rom := armaniROM(t, "lavender")
	out := filepath.Join(t.TempDir(), "bundle")
	_, err := Run(context.Background(), Options{Device: device(t, "armani"), Input: rom, Sets: hardened(t), Out: out})
	if !errors.Is(err, failure.ErrRefused) {
		t.Fatalf("wrong device: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("partial bundle left")
	}
	if _, err := os.Stat(out + ".building"); !os.IsNotExist(err) {
		t.Fatal("temporary bundle left")
	}
	// A truncated zip and a file that is no ROM: invalid input.
	good := armaniROM(t, "armani")
	b, _ := os.ReadFile(good)
	trunc := filepath.Join(t.TempDir(), "trunc.zip")
	os.WriteFile(trunc, b[:len(b)/2], 0o644)
	junk := filepath.Join(t.TempDir(), "junk.bin")
	os.WriteFile(junk, []byte("not a rom"), 0o644)
	for _, in := range []string{trunc, junk} {
		_, err := Run(context.Background(), Options{Device: device(t, "armani"), Input: in, Sets: hardened(t), Out: filepath.Join(t.TempDir(), "b")})
		if !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: %v", filepath.Base(in), err)
		}
	}
}
