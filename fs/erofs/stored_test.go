package erofs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/internal/validators"
)

// TestReuseStored rebuilds patched trees over EROFS images (ours and mkfs.erofs's, 4 KiB and big
// pclusters) with ReuseStored: the unchanged files' clusters are copied (ReusedBytes), and the image reads
// exactly like one written from scratch, passes fsck.erofs (check and extract) and mounts with the
// kernel showing the patched tree.
func TestReuseStored(t *testing.T) {
	tr := sampleTreeN(t, 300, 254) // mkfs.erofs 1.5 fails on a 255-byte name
	sources := map[string]string{
		"romforge-lz4hc": writeImage(t, tr, WriteOptions{Compression: "lz4hc"}),
		"romforge-big":   writeImage(t, tr, WriteOptions{Compression: "lz4hc", ClusterSize: 65536}),
	}
	if validators.Have("mkfs.erofs") && os.Geteuid() == 0 {
		mkfs := "mkfs.erofs"
		src := filepath.Join(t.TempDir(), "src")
		os.Mkdir(src, 0o755)
		materialize(t, tr, src)
		for name, args := range map[string][]string{"mkfs-lz4hc": {"-zlz4hc"}, "mkfs-big": {"-zlz4hc", "-C65536"}, "mkfs-lz4": {"-zlz4"}} {
			img := filepath.Join(t.TempDir(), name+".img")
			validators.Run(t, mkfs, append(append([]string{"-T1700000000", "--quiet"}, args...), img, src)...)
			sources[name] = img
		}
	} else {
		t.Log("mkfs.erofs sources skipped: they need the tool and root")
	}
	// Each source rebuilt with its own pcluster size, and two crossings (big clusters cannot be copied
	// into a 4 KiB-cluster image: those files are compressed again; 4 KiB ones can go into a big one).
	cases := []struct {
		src string
		cs  int
	}{{"romforge-lz4hc", 0}, {"romforge-lz4hc", 65536}, {"romforge-big", 65536}, {"mkfs-lz4", 0}, {"mkfs-lz4hc", 0}, {"mkfs-big", 65536}, {"mkfs-big", 0}}
	for _, c := range cases {
		name, path, cs := c.src, sources[c.src], c.cs
		if path == "" {
			continue
		}
		{
			t.Run(name+"/cluster"+map[int]string{0: "4k", 65536: "64k"}[cs], func(t *testing.T) {
				o := tree.NewOverlay(openImage(t, path))
				if err := o.Remove("etc/fbaa"); err != nil {
					t.Fatal(err)
				}
				m, _ := o.Meta("big/text")
				if err := o.Put("big/text", m, []byte("ro.romforge=patched\n")); err != nil {
					t.Fatal(err)
				}
				if err := o.Put("etc/added", m, []byte(strings.Repeat("new file\n", 900))); err != nil {
					t.Fatal(err)
				}
				opt := WriteOptions{Compression: "lz4hc", ClusterSize: cs, Timestamp: time.Unix(1700000000, 0)}
				fresh := writeImage(t, o, opt)
				opt.ReuseStored = true
				p := filepath.Join(t.TempDir(), "reused.img")
				f, err := os.Create(p)
				if err != nil {
					t.Fatal(err)
				}
				res, err := Write(context.Background(), f, o, opt)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				if res.ReusedBytes == 0 || res.ReusedBytes >= res.UncompressedBytes {
					t.Fatalf("reused %d of %d bytes", res.ReusedBytes, res.UncompressedBytes)
				}
				t.Logf("reused %d of %d bytes", res.ReusedBytes, res.UncompressedBytes)
				compareTrees(t, openImage(t, fresh), openImage(t, p), cmpOpts{})
				if !validators.Have("fsck.erofs") {
					t.Skip("fsck.erofs not installed (scripts/install-validators.sh)")
				}
				validators.Run(t, "fsck.erofs", p)
				ex := filepath.Join(t.TempDir(), "x")
				validators.Run(t, "fsck.erofs", "--extract="+ex, p)
				compareTrees(t, o, hostTree(t, ex), cmpOpts{contents: true})
				if os.Geteuid() != 0 {
					return
				}
				compareTrees(t, o, hostTree(t, mountImage(t, p)), cmpOpts{})
			})
		}
	}
}
