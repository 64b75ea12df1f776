package ext4

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/fs/tree"

	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
)

func TestReadFixtures(t *testing.T) {
	fx := validators.Fixtures(t)
	for _, c := range []struct{ img, dir string }{
		{"ext4/system.img", "rom/system"},
		{"ext4/vendor.img", "rom/vendor"},
	} {
		t.Run(c.img, func(t *testing.T) {
			fsys := openImage(t, filepath.Join(fx, c.img))
			compareTrees(t, hostTree(t, filepath.Join(fx, c.dir)), fsys, ignoreLostFound)
			info := fsys.Info()
			if info.BlockSize != 4096 || !strings.Contains(strings.Join(info.Features, " "), "has_journal") {
				t.Errorf("Info = %+v", info)
			}
		})
	}
	fsys := openImage(t, filepath.Join(fx, "ext4/system.img"))
	m, err := fsys.Meta("bin/netd_fake")
	if err != nil {
		t.Fatal(err)
	}
	if m.SELinux() != "u:object_r:netd_exec:s0" || m.Capabilities() != 0x3000 || m.GID != 2000 || m.Mode.Perm() != 0o750 {
		t.Errorf("netd_fake meta = %+v", m)
	}
	if tgt, err := fsys.ReadLink("bin/ls"); err != nil || tgt != "toybox" {
		t.Errorf("ReadLink(bin/ls) = %q, %v", tgt, err)
	}
}

func TestOpenRejects(t *testing.T) {
	fx := validators.Fixtures(t)
	good, err := os.ReadFile(filepath.Join(fx, "ext4/vendor.img"))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	cases := map[string][]byte{
		"short":          good[:1500],
		"magic":          corrupt(func(b []byte) { b[1080] = 0 }),
		"inodes absurd":  corrupt(func(b []byte) { le.PutUint32(b[1024:], 0xFFFFFFF0); le.PutUint32(b[1024+40:], 0xFFFFFFF0) }),
		"blocks absurd":  corrupt(func(b []byte) { le.PutUint32(b[1024+4:], 0x7FFFFFFF) }),
		"block size":     corrupt(func(b []byte) { le.PutUint32(b[1024+24:], 40) }),
		"truncated":      good[:len(good)/2],
		"incompat":       corrupt(func(b []byte) { le.PutUint32(b[1024+96:], le.Uint32(b[1024+96:])|incompatEncrypt) }),
		"blocks per grp": corrupt(func(b []byte) { le.PutUint32(b[1024+32:], 0) }),
	}
	for name, b := range cases {
		_, err := Open(memImage(b))
		if err == nil || !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: Open = %v, want an ErrInvalid error", name, err)
		}
	}
}

func buildMem(t *testing.T, m *tree.Mem) []byte {
	t.Helper()
	p, _ := build(t, t.TempDir(), "x.img", m, WriteOptions{Shrink: true})
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCorruptDirectoryCycle(t *testing.T) {
	m := tree.NewMem()
	m.MkdirAll("a/b", tree.Meta{Mode: 0o755})
	b := buildMem(t, m)
	fsys, _ := Open(memImage(b))
	in, err := fsys.resolve("t", "a")
	if err != nil {
		t.Fatal(err)
	}
	ext, _ := fsys.mapping(in)
	blk := b[ext[0].pblk*uint64(fsys.bs):][:fsys.bs]
	i := bytes.Index(blk, []byte{1, ftDir, 'b'})
	if i < 7 {
		t.Fatal("entry b not found")
	}
	le.PutUint32(blk[i-6:], in.ino) // a/b now points back to a
	err = exercise(b)
	if err == nil || !errors.Is(err, failure.ErrInvalid) || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("walk of a cyclic tree: %v", err)
	}
}

func TestCorruptExtentPastImage(t *testing.T) {
	m := tree.NewMem()
	m.Put("f", tree.Meta{Mode: 0o644}, bytes.Repeat([]byte("z"), 10000))
	b := buildMem(t, m)
	fsys, _ := Open(memImage(b))
	in, _ := fsys.resolve("t", "f")
	off := int64(fsys.groups[0].InodeTable)*fsys.bs + int64(in.ino-1)*int64(fsys.sb.InodeSize)
	le.PutUint32(b[off+40+12+8:], 0x7FFFFFF0) // first extent's start block
	_, err := fs.ReadFile(mustOpen(t, b), "f")
	if err == nil || !errors.Is(err, failure.ErrInvalid) {
		t.Fatalf("reading an extent past the image: %v", err)
	}
}

func mustOpen(t *testing.T, b []byte) *FS {
	t.Helper()
	f, err := Open(memImage(b))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCorruptChecksums(t *testing.T) {
	m := tree.NewMem()
	m.Put("f", tree.Meta{Mode: 0o644}, []byte("data"))
	p, _ := build(t, t.TempDir(), "x.img", m, WriteOptions{Shrink: true, MetadataCsum: true})
	good, _ := os.ReadFile(p)
	fsys := mustOpen(t, good)
	in, _ := fsys.resolve("t", "f")
	inodeOff := int64(fsys.groups[0].InodeTable)*fsys.bs + int64(in.ino-1)*int64(fsys.sb.InodeSize)
	for name, off := range map[string]int64{"superblock": 1024 + 200, "group descriptor": 4096 + 12, "inode": inodeOff + 2} {
		b := bytes.Clone(good)
		b[off] ^= 1
		err := exercise(b)
		if err == nil || !errors.Is(err, failure.ErrInvalid) || !strings.Contains(err.Error(), "checksum") {
			t.Errorf("%s corrupted: %v", name, err)
		}
	}
}

// TestExtentTree writes a file that needs an extent tree (legacy layout, 1 KiB blocks: every group
// boundary splits the file) and checks it with e2fsck, debugfs, our reader and the kernel.
func TestExtentTree(t *testing.T) {
	m := tree.NewMem()
	data := make([]byte, 44<<20)
	for i := range data {
		data[i] = byte(i / 1024 * 7)
	}
	m.Put("big", tree.Meta{Mode: 0o644}, data)
	img, _ := build(t, t.TempDir(), "x.img", m, WriteOptions{Shrink: true, Profile: "legacy", BlockSize: 1024, Journal: true})
	fsck(t, img)
	fsys := openImage(t, img)
	in, _ := fsys.resolve("t", "big")
	if d := le.Uint16(in.iblock()[6:]); d < 1 {
		t.Fatalf("extent tree depth %d, want ≥ 1", d)
	}
	compareTrees(t, m, fsys, ignoreLostFound)
	mountCompare(t, img, m)
}
