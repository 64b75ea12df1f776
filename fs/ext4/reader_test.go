package ext4

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
