package ext4

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/internal/validators"
)

func label(l string) map[string][]byte {
	return map[string][]byte{tree.XattrSELinux: []byte("u:object_r:" + l + ":s0\x00")}
}

func withX(m map[string][]byte, k string, v []byte) map[string][]byte {
	out := map[string][]byte{}
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

func aclXattr(entries ...[3]uint32) []byte {
	b := make([]byte, 4, 4+8*len(entries))
	le.PutUint32(b, 2)
	for _, e := range entries {
		var x [8]byte
		le.PutUint16(x[0:], uint16(e[0]))
		le.PutUint16(x[2:], uint16(e[1]))
		le.PutUint32(x[4:], e[2])
		b = append(b, x[:]...)
	}
	return b
}

// richTree has every kind of entry the writer supports.
func richTree(t testing.TB) *tree.Mem {
	t.Helper()
	m := tree.NewMem()
	rnd := rand.New(rand.NewSource(1))
	data := func(n int) []byte {
		b := make([]byte, n)
		rnd.Read(b)
		return b
	}
	must := func(err error) {
		if err != nil {
			t.Helper()
			t.Fatal(err)
		}
	}
	dir := func(name string, mode fs.FileMode, uid, gid uint32) {
		must(m.Put(name, tree.Meta{Mode: fs.ModeDir | mode, UID: uid, GID: gid, Xattrs: label("system_file")}, nil))
	}
	file := func(name string, mode fs.FileMode, x map[string][]byte, b []byte) {
		must(m.Put(name, tree.Meta{Mode: mode, GID: 2000, Xattrs: x}, b))
	}
	root, _ := m.Meta(".")
	root.Xattrs = label("rootfs")
	must(m.Put(".", root, nil))
	dir("bin", 0o755, 0, 2000)
	dir("etc", 0o755, 0, 0)
	dir("big", 0o755, 0, 0)
	dir("tmp", 0o777|fs.ModeSticky, 0, 0)
	dir("sgid", 0o755|fs.ModeSetgid, 1000, 1000)
	dir("deep", 0o700, 100000, 100001)
	must(m.MkdirAll("deep/a/b/c/d", tree.Meta{Mode: 0o751}))
	file("etc/empty", 0o644, label("etc_file"), nil)
	file("etc/one", 0o644, label("etc_file"), []byte("x"))
	file("etc/block", 0o600, label("etc_file"), data(4096))
	file("etc/block1", 0o600, label("etc_file"), data(4097))
	file("bin/su", 0o750|fs.ModeSetuid, withX(label("su_exec"), tree.XattrCapability, tree.EncodeCapability(1<<21|1<<6)), data(70000))
	file("bin/netd", 0o750, withX(label("netd_exec"), tree.XattrCapability, tree.EncodeCapability(0x3000)), data(48))
	file("bin/netd2", 0o750, withX(label("netd_exec"), tree.XattrCapability, tree.EncodeCapability(0x3000)), data(49))
	big := bytes.Repeat([]byte("u"), 600)
	for i := 0; i < 3; i++ {
		file(fmt.Sprintf("etc/userx%d", i), 0o644, withX(withX(label("etc_file"), "user.comment", big), "trusted.t", []byte{1, 2, 3}), data(10))
	}
	file("etc/acl", 0o640, withX(label("etc_file"), "system.posix_acl_access",
		aclXattr([3]uint32{1, 6, 0xFFFFFFFF}, [3]uint32{2, 4, 1000}, [3]uint32{4, 4, 0xFFFFFFFF}, [3]uint32{0x10, 4, 0xFFFFFFFF}, [3]uint32{0x20, 0, 0xFFFFFFFF})), []byte("acl"))
	file("lib.so", 0o644, label("system_lib_file"), data(3<<20+123))
	link := tree.Meta{Mode: 0o755, Link: 42, Xattrs: label("toolbox_exec")}
	toybox := data(5000)
	must(m.Put("bin/toybox", link, toybox))
	must(m.Put("etc/toybox-hardlink", link, toybox))
	for _, tgt := range []string{"toybox", strings.Repeat("a", 59), strings.Repeat("b", 60), strings.Repeat("c/", 100), strings.Repeat("d", 1000)} {
		must(m.Put(fmt.Sprintf("bin/ln%d", len(tgt)), tree.Meta{Mode: fs.ModeSymlink | 0o777, Target: tgt, Xattrs: label("system_file")}, nil))
	}
	must(m.Put("etc/null", tree.Meta{Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Rdev: tree.Mkdev(1, 3)}, nil))
	must(m.Put("etc/sda", tree.Meta{Mode: fs.ModeDevice | 0o660, GID: 6, Rdev: tree.Mkdev(8, 0)}, nil))
	must(m.Put("etc/bigdev", tree.Meta{Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Rdev: tree.Mkdev(300, 70000)}, nil))
	must(m.Put("etc/fifo", tree.Meta{Mode: fs.ModeNamedPipe | 0o600}, nil))
	must(m.Put("etc/sock", tree.Meta{Mode: fs.ModeSocket | 0o600}, nil))
	for i := 0; i < 1500; i++ {
		file(fmt.Sprintf("big/file-with-a-longish-name-%05d", i), 0o644, label("system_file"), []byte(fmt.Sprint(i)))
	}
	return m
}

func TestWriteRichTree(t *testing.T) {
	src := richTree(t)
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		opt  WriteOptions
	}{
		{"modern", WriteOptions{Shrink: true, Margin: 256 << 10}},
		{"modern-journal-csum", WriteOptions{Size: 64 << 20, Journal: true, MetadataCsum: true, ReadOnly: true}},
		{"legacy-journal", WriteOptions{Size: 48 << 20, Profile: "legacy", Journal: true}},
		{"legacy-1k-shrink", WriteOptions{Shrink: true, Profile: "legacy", BlockSize: 1024}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.opt.UUID = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
			img, _ := build(t, dir, c.name+".img", src, c.opt)
			fsck(t, img)
			got := openImage(t, img)
			compareTrees(t, src, got, ignoreLostFound)
			// debugfs agrees on xattrs and stat.
			if validators.Have("debugfs") {
				out := validators.Run(t, "debugfs", "-R", "ea_list /bin/su", img)
				if !strings.Contains(out, `security.selinux (22) = "u:object_r:su_exec:s0\000"`) || !strings.Contains(out, "security.capability (20) = 01 00 00 02 40 00 20 00") {
					t.Errorf("debugfs ea_list /bin/su:\n%s", out)
				}
				out = validators.Run(t, "debugfs", "-R", "stat /bin/su", img)
				if !regexp.MustCompile(`Type: regular\s+Mode:\s+04750`).MatchString(out) || !regexp.MustCompile(`User:\s+0\s+Group:\s+2000\s+Project:\s+0\s+Size: 70000`).MatchString(out) {
					t.Errorf("debugfs stat /bin/su:\n%s", out)
				}
			}
			mountCompare(t, img, src)
		})
	}
}

// mountCompare loop-mounts img read-only and compares the kernel's view with src.
func mountCompare(t *testing.T, img string, src tree.Tree) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Log("not root: skipping the kernel mount check")
		return
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("kernel mount of %s failed: %v\n%s", img, err, out)
	}
	defer func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v %s", err, out)
		}
	}()
	compareTrees(t, src, hostTree(t, mnt), ignoreLostFound)
}

func getfattrDump(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command("getfattr", "-R", "-d", "-m", "-", "-h", ".")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("getfattr: %v\n%s", err, out)
	}
	return string(out)
}

// TestFixtureRebuildMount builds the fixture tree, mounts it and compares getfattr output with the source
// and debugfs output with the mke2fs-built fixture.
func TestFixtureRebuildMount(t *testing.T) {
	fx := validators.Fixtures(t)
	validators.Root(t)
	validators.Tool(t, "getfattr")
	srcDir := filepath.Join(fx, "rom/system")
	src := hostTree(t, srcDir)
	img, _ := build(t, t.TempDir(), "system.img", src, WriteOptions{Size: 16 << 20, Journal: true, VolumeName: "system", MountPoint: "/system"})
	fsck(t, img)
	want, _ := os.ReadFile(filepath.Join(fx, "expected/ext4-system.ea_list-netd_fake.txt"))
	got := dropBanner(validators.Run(t, "debugfs", "-R", "ea_list /bin/netd_fake", img))
	if sortedLines(got) != sortedLines(string(want)) {
		t.Errorf("debugfs ea_list differs from the mke2fs image:\n%s\nwant\n%s", got, want)
	}
	stat := validators.Run(t, "debugfs", "-R", "stat /bin/netd_fake", img)
	ref := validators.Run(t, "debugfs", "-R", "stat /bin/netd_fake", filepath.Join(fx, "ext4/system.img"))
	for _, re := range []string{`Type: regular\s+Mode:\s+\d+`, `User:\s+\d+\s+Group:\s+\d+\s+Project:\s+\d+\s+Size: \d+`} {
		a, b := regexp.MustCompile(re).FindString(stat), regexp.MustCompile(re).FindString(ref)
		if a == "" || a != b {
			t.Errorf("debugfs stat: %q, mke2fs image has %q", a, b)
		}
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v\n%s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	if a, b := getfattrDump(t, srcDir), getfattrDump(t, mnt); a != b {
		t.Errorf("getfattr output differs:\nsource:\n%s\nmounted:\n%s", a, b)
	}
	compareTrees(t, src, hostTree(t, mnt), ignoreLostFound)
}

func dropBanner(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "debugfs ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func sortedLines(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	for i := range l {
		l[i] = strings.TrimSpace(l[i])
	}
	sort.Strings(l)
	return strings.Join(l, "\n")
}

func TestDeterministic(t *testing.T) {
	src := richTree(t)
	dir := t.TempDir()
	opt := WriteOptions{Shrink: true, Journal: true, HashSeed: [16]byte{9}}
	a, _ := build(t, dir, "a.img", src, opt)
	opt.Workers = 1
	b, _ := build(t, dir, "b.img", src, opt)
	x, _ := os.ReadFile(a)
	y, _ := os.ReadFile(b)
	if !bytes.Equal(x, y) {
		t.Fatal("two builds of the same tree differ")
	}
}

// TestRoundTripOwnImage rebuilds an image from our own reader and gets the same bytes.
func TestRoundTripOwnImage(t *testing.T) {
	src := richTree(t)
	dir := t.TempDir()
	opt := WriteOptions{Size: 32 << 20, Journal: true}
	a, _ := build(t, dir, "a.img", src, opt)
	fa := openImage(t, a)
	b, _ := build(t, dir, "b.img", fa, opt)
	fsck(t, b)
	compareTrees(t, src, openImage(t, b), ignoreLostFound)
	x, _ := os.ReadFile(a)
	y, _ := os.ReadFile(b)
	if !bytes.Equal(x, y) {
		t.Error("rebuilding our own image from our reader changed its bytes")
	}
}

func TestWriteTooSmall(t *testing.T) {
	src := richTree(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "x.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = Write(t.Context(), f, src, WriteOptions{Size: 2 << 20})
	if err == nil || !strings.Contains(err.Error(), "size is 2097152 bytes") {
		t.Fatalf("Write into 2 MiB: %v", err)
	}
}

// mkHostTree makes a host directory with what mke2fs -d copies: hard links, devices (root), long symlinks,
// security xattrs (root), a directory of thousands of entries.
func mkHostTree(t *testing.T, dir string, n int) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "etc/hosts"), []byte("127.0.0.1 localhost\n"), 0o644)
	writeFile(t, filepath.Join(dir, "bin/tool"), bytes.Repeat([]byte("tool"), 3000), 0o755)
	writeFile(t, filepath.Join(dir, "small"), []byte("tiny"), 0o600)
	writeFile(t, filepath.Join(dir, "empty"), nil, 0o644)
	big := make([]byte, 300<<10)
	rand.New(rand.NewSource(2)).Read(big)
	writeFile(t, filepath.Join(dir, "lib/big.so"), big, 0o644)
	if err := os.Link(filepath.Join(dir, "bin/tool"), filepath.Join(dir, "etc/tool-link")); err != nil {
		t.Fatal(err)
	}
	os.Symlink("tool", filepath.Join(dir, "bin/short"))
	os.Symlink(strings.Repeat("long/", 40), filepath.Join(dir, "bin/long"))
	os.MkdirAll(filepath.Join(dir, "many"), 0o755)
	for i := 0; i < n; i++ {
		writeFile(t, filepath.Join(dir, "many", fmt.Sprintf("entry-number-%05d", i)), []byte{byte(i)}, 0o644)
	}
	if os.Geteuid() == 0 {
		must := func(err error) {
			if err != nil {
				t.Helper()
				t.Fatal(err)
			}
		}
		must(unix.Mknod(filepath.Join(dir, "etc/null"), syscall.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(unix.Mknod(filepath.Join(dir, "etc/sda"), syscall.S_IFBLK|0o660, int(unix.Mkdev(8, 0))))
		must(unix.Lsetxattr(filepath.Join(dir, "bin/tool"), "security.selinux", []byte("u:object_r:tool_exec:s0\x00"), 0))
		must(unix.Lsetxattr(filepath.Join(dir, "bin/tool"), "security.capability", tree.EncodeCapability(0x3000), 0))
		must(unix.Lsetxattr(filepath.Join(dir, "bin/long"), "security.selinux", []byte("u:object_r:system_file:s0\x00"), 0))
		must(os.Lchown(filepath.Join(dir, "small"), 1000, 2000))
	}
	must := func(err error) {
		if err != nil {
			t.Helper()
			t.Fatal(err)
		}
	}
	must(unix.Lsetxattr(filepath.Join(dir, "etc/hosts"), "user.note", bytes.Repeat([]byte("n"), 300), 0))
}

// TestReadMke2fsVariants reads what mke2fs -d makes with many feature sets, each compared file by file.
func TestReadMke2fsVariants(t *testing.T) {
	validators.Tool(t, "mke2fs")
	work := t.TempDir()
	src := filepath.Join(work, "src")
	mkHostTree(t, src, 1200)
	tr := hostTree(t, src)
	env := append(os.Environ(), "MKE2FS_CONFIG=/dev/null", "E2FSPROGS_FAKE_TIME=1700000000")
	cases := []struct {
		name string
		args []string
		post [][]string
	}{
		{"ext4-64bit-csum", []string{"-t", "ext4", "-O", "64bit,metadata_csum,extent,flex_bg,huge_file,dir_nlink,extra_isize,dir_index,sparse_super,large_file,filetype,ext_attr,has_journal", "-I", "256"}, nil},
		{"ext4-32bit", []string{"-t", "ext4", "-O", "^64bit,^metadata_csum,extent,flex_bg,dir_index,filetype,ext_attr,sparse_super,large_file,huge_file,extra_isize", "-I", "256"}, nil},
		{"ext4-1k", []string{"-t", "ext4", "-b", "1024", "-O", "extent,flex_bg,dir_index,filetype,ext_attr,metadata_csum,64bit", "-I", "256"}, nil},
		{"inline-data", []string{"-t", "ext4", "-O", "inline_data,extent,dir_index,filetype,ext_attr,metadata_csum,64bit", "-I", "256"}, nil},
		{"ext3-blockmap", []string{"-t", "ext3", "-O", "dir_index,filetype,ext_attr,sparse_super,large_file", "-I", "256"}, nil},
		{"ext2-128", []string{"-t", "ext2", "-O", "filetype,ext_attr", "-I", "128"}, nil},
		{"htree", []string{"-t", "ext4", "-O", "extent,flex_bg,dir_index,filetype,ext_attr,metadata_csum,64bit", "-I", "256"}, [][]string{{"e2fsck", "-fyD"}}},
		{"htree-nocsum", []string{"-t", "ext4", "-O", "extent,dir_index,filetype,ext_attr", "-I", "256"}, [][]string{{"e2fsck", "-fyD"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := filepath.Join(work, c.name+".img")
			args := append([]string{"-q", "-F", "-U", "01234567-89ab-cdef-0123-456789abcdef", "-E", "hash_seed=01234567-89ab-cdef-0123-456789abcdef", "-N", "4096", "-d", src}, c.args...)
			args = append(args, img, "24M")
			cmd := exec.Command("mke2fs", args...)
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("mke2fs %v: %v\n%s", args, err, out)
			}
			for _, p := range c.post {
				out, err := exec.Command(p[0], append(p[1:], img)...).CombinedOutput()
				if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() > 2) {
					t.Fatalf("%v: %v\n%s", p, err, out)
				}
			}
			if strings.HasPrefix(c.name, "htree") {
				out := validators.Run(t, "debugfs", "-R", "htree /many", img)
				if !strings.Contains(out, "Root node dump") {
					t.Fatalf("/many is not indexed:\n%.300s", out)
				}
			}
			compareTrees(t, tr, openImage(t, img), ignoreLostFound)
		})
	}
}
