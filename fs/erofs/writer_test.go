package erofs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/validators"
)

var modes = []struct {
	name string
	opt  WriteOptions
}{
	{"plain", WriteOptions{}},
	{"lz4", WriteOptions{Compression: "lz4"}},
	{"lz4hc", WriteOptions{Compression: "lz4hc"}},
	{"lz4hc-big", WriteOptions{Compression: "lz4hc", Level: 12, ClusterSize: 65536}},
}

// writeImage writes t to a file in a temp dir and returns its path.
func writeImage(t *testing.T, tr tree.Tree, opt WriteOptions) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "out.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if opt.Timestamp.IsZero() {
		opt.Timestamp = time.Unix(1700000000, 0)
	}
	if _, err := Write(context.Background(), f, tr, opt); err != nil {
		t.Fatalf("write: %v", err)
	}
	return p
}

func TestWriteFixtureTree(t *testing.T) {
	fx := validators.Fixtures(t)
	src := hostTree(t, filepath.Join(fx, "rom", "system"))
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			p := writeImage(t, src, m.opt)
			compareTrees(t, src, openImage(t, p), cmpOpts{rootMeta: true})
			if validators.Have("fsck.erofs") {
				validators.Run(t, "fsck.erofs", p)
			}
		})
	}
}

func TestWriteDeterministic(t *testing.T) {
	tr := sampleTree(t, 100)
	for _, m := range modes[1:3] {
		var sums [][32]byte
		for _, workers := range []int{1, 4} {
			o := m.opt
			o.Workers = workers
			b, err := os.ReadFile(writeImage(t, tr, o))
			if err != nil {
				t.Fatal(err)
			}
			sums = append(sums, sha256.Sum256(b))
		}
		if sums[0] != sums[1] {
			t.Errorf("%s: output depends on the number of workers", m.name)
		}
	}
}

// sampleTree makes an in-memory tree with every entry type.
// mkfs.erofs 1.5 cannot store 255-byte names (it fails with ENOENT), so trees for it use 254.
func sampleTree(t *testing.T, nfiles int) *tree.Mem { return sampleTreeN(t, nfiles, 255) }

func sampleTreeN(t *testing.T, nfiles, longName int) *tree.Mem {
	t.Helper()
	tr := tree.NewMem()
	mk := func(name string, m tree.Meta, data []byte) {
		if err := tr.Put(name, m, data); err != nil {
			t.Fatal(err)
		}
	}
	lbl := func(m tree.Meta, l string) tree.Meta { m.SetSELinux(l); return m }
	dir := lbl(tree.Meta{Mode: 0o755 | 1<<31, UID: 0, GID: 0}, "u:object_r:system_file:s0")
	mk("bin", dir, nil)
	mk("etc", dir, nil)
	mk("big", dir, nil)
	var text bytes.Buffer
	for i := 0; text.Len() < 1<<20; i++ {
		text.WriteString("ro.build.prop.key")
		text.WriteString(string(rune('a' + i%26)))
		text.WriteString("=value\n")
	}
	rnd := make([]byte, 1<<20)
	x := uint32(1)
	for i := range rnd {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		rnd[i] = byte(x)
	}
	for i := 0; i < nfiles; i++ {
		n := (i * 7919) % 9000
		var data []byte
		switch i % 3 {
		case 0:
			data = text.Bytes()[i : i+n]
		case 1:
			data = rnd[i : i+n]
		case 2:
			data = append(append([]byte{}, text.Bytes()[:n/2]...), rnd[:n/2]...)
		}
		m := lbl(tree.Meta{Mode: 0o644, UID: uint32(i % 3 * 1000), GID: 2000}, "u:object_r:system_file:s0")
		mk(filepath.Join("etc", "f"+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676%26))), m, data)
	}
	exe := lbl(tree.Meta{Mode: 0o750, UID: 0, GID: 2000}, "u:object_r:netd_exec:s0")
	exe.SetCapabilities(1<<12 | 1<<13)
	exe.Xattrs["user.comment"] = []byte("hello")
	exe.Xattrs["trusted.x"] = []byte{}
	mk("bin/netd", exe, text.Bytes()[:5000])
	mk("bin/sh", lbl(tree.Meta{Mode: 1<<27 /* symlink */ | 0o777, Target: "toybox"}, "u:object_r:system_file:s0"), nil)
	mk("bin/toybox", lbl(tree.Meta{Mode: 0o755, Link: 7}, "u:object_r:toolbox_exec:s0"), text.Bytes()[:123])
	mk("bin/toybox2", lbl(tree.Meta{Mode: 0o755, Link: 7}, "u:object_r:toolbox_exec:s0"), text.Bytes()[:123])
	mk("empty", lbl(tree.Meta{Mode: 0o600}, "u:object_r:system_file:s0"), nil)
	long := string(bytes.Repeat([]byte("L"), longName))
	mk(long, tree.Meta{Mode: 0o644, UID: 70000, GID: 80000}, []byte("long name, big ids"))
	mk("null", tree.Meta{Mode: 0o666 | 1<<26 | 1<<21 /* char device */, Rdev: tree.Mkdev(1, 3)}, nil)
	mk("sda", tree.Meta{Mode: 0o660 | 1<<26, Rdev: tree.Mkdev(8, 300)}, nil)
	mk("fifo", tree.Meta{Mode: 0o644 | 1<<25}, nil)
	mk("big/text", tree.Meta{Mode: 0o644}, text.Bytes())
	mk("big/random", tree.Meta{Mode: 0o644}, rnd)
	big := make([]byte, 10<<20+17) // ≥ 10 MiB, mostly zeros with text and random runs
	copy(big[3<<20:], text.Bytes())
	copy(big[7<<20+5:], rnd)
	mk("big/mixed", tree.Meta{Mode: 0o644}, big)
	return tr
}

func TestWriteSampleRoundTrip(t *testing.T) {
	tr := sampleTree(t, 500)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			p := writeImage(t, tr, m.opt)
			compareTrees(t, tr, openImage(t, p), cmpOpts{})
			if validators.Have("fsck.erofs") {
				validators.Run(t, "fsck.erofs", p)
			}
		})
	}
}

var _ = image.New
