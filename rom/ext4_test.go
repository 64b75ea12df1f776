package rom

import (
	"archive/zip"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/fs/ext4"
	"github.com/romforge/romforge/internal/validators"
)

// TestFileOTAToExt4 feeds the file-OTA tree to the ext4 writer and checks the image with e2fsprogs:
// the updater-script's modes, owners, capabilities and labels end up in the filesystem.
func TestFileOTAToExt4(t *testing.T) {
	validators.Tool(t, "e2fsck")
	validators.Tool(t, "debugfs")
	data := fileOTAZip(t)
	zr, _ := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	tr, err := FileOTATree(zr)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "system.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ext4.Write(context.Background(), f, tr, ext4.WriteOptions{Shrink: true, Margin: 1 << 20, Profile: "legacy", MountPoint: "/system"}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	validators.Run(t, "e2fsck", "-fn", p)
	stat := validators.Run(t, "debugfs", "-R", "stat /bin/netd_fake", p)
	if !strings.Contains(stat, "Mode:  0750") || !strings.Contains(stat, "User:     0   Group:  2000") {
		t.Errorf("netd_fake stat:\n%s", stat)
	}
	ea := validators.Run(t, "debugfs", "-R", "ea_list /bin/netd_fake", p)
	if !strings.Contains(ea, `security.selinux (24) = "u:object_r:netd_exec:s0\000"`) || !strings.Contains(ea, "security.capability (20)") {
		t.Errorf("netd_fake xattrs:\n%s", ea)
	}
	if ls := validators.Run(t, "debugfs", "-R", "stat /bin/ls", p); !strings.Contains(ls, "Fast link dest: \"toybox\"") {
		t.Errorf("ls symlink:\n%s", ls)
	}
	if hosts := validators.Run(t, "debugfs", "-R", "stat /etc/hosts", p); !strings.Contains(hosts, "Mode:  0640") || !strings.Contains(hosts, "User:  1000   Group:  1000") {
		t.Errorf("hosts:\n%s", hosts)
	}
}
