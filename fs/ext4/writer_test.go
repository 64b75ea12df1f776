package ext4

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/internal/validators"
)

// build writes t into dir/name with opt and returns the image path.
func build(t testing.TB, dir, name string, src tree.Tree, opt WriteOptions) (string, *WriteResult) {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := Write(context.Background(), f, src, opt)
	if err != nil {
		t.Fatalf("Write %s: %v", name, err)
	}
	return p, res
}

// fsck runs e2fsck -fn and fails the test on any complaint.
func fsck(t testing.TB, img string) {
	t.Helper()
	validators.Tool(t, "e2fsck")
	out, err := validators.RunErr("e2fsck", "-fn", img)
	if err != nil {
		t.Fatalf("e2fsck -fn %s: %v\n%s", img, err, out)
	}
}

func TestWriteFixtureTree(t *testing.T) {
	fx := validators.Fixtures(t)
	src := hostTree(t, filepath.Join(fx, "rom/system"))
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		opt  WriteOptions
	}{
		{"modern-shrink.img", WriteOptions{Shrink: true}},
		{"modern-journal.img", WriteOptions{Size: 16 << 20, Journal: true, VolumeName: "system", MountPoint: "/system"}},
		{"legacy-journal.img", WriteOptions{Size: 16 << 20, Profile: "legacy", Journal: true}},
		{"legacy-shrink.img", WriteOptions{Shrink: true, Profile: "legacy", Margin: 1 << 20}},
		{"csum.img", WriteOptions{Size: 16 << 20, MetadataCsum: true, Journal: true}},
		{"1k.img", WriteOptions{Size: 12 << 20, BlockSize: 1024, Journal: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			img, res := build(t, dir, c.name, src, c.opt)
			t.Logf("%s: %+v", c.name, res)
			fsck(t, img)
			compareTrees(t, src, openImage(t, img), ignoreLostFound)
		})
	}
}
