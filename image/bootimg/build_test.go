package bootimg

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/validators"
)

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// argsFromFlags turns mkbootimg command-line flags into Args, reading part files from files (flag →
// content). It is the test's independent mapping of mkbootimg's documented options.
func argsFromFlags(t *testing.T, flags []string, files map[string][]byte) *Args {
	t.Helper()
	a := DefaultArgs()
	part := func(name string) image.Image {
		b, ok := files[name]
		if !ok {
			t.Fatalf("no content for %s", name)
		}
		return bytesImage(b)
	}
	num := func(s string) uint64 {
		n, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	var frag RamdiskFragment
	for i := 0; i < len(flags); i++ {
		k := flags[i]
		if k == "--vendor_boot" {
			a.VendorBoot = true
			continue
		}
		i++
		v := flags[i]
		switch k {
		case "--header_version":
			a.HeaderVersion = uint32(num(v))
		case "--kernel":
			a.Kernel = part(v)
		case "--ramdisk":
			a.Ramdisk = part(v)
		case "--second":
			a.Second = part(v)
		case "--dt":
			a.DT = part(v)
		case "--recovery_dtbo":
			a.RecoveryDTBO = part(v)
		case "--dtb":
			a.DTB = part(v)
		case "--vendor_ramdisk":
			a.VendorRamdisk = part(v)
		case "--vendor_bootconfig":
			a.Bootconfig = part(v)
		case "--cmdline":
			a.Cmdline = v
		case "--vendor_cmdline":
			a.VendorCmdline = v
		case "--board":
			a.Board = v
		case "--os_version":
			a.OSVersion = v
		case "--os_patch_level":
			a.OSPatchLevel = v
		case "--base":
			a.Base = uint32(num(v))
		case "--kernel_offset":
			a.KernelOffset = uint32(num(v))
		case "--ramdisk_offset":
			a.RamdiskOffset = uint32(num(v))
		case "--second_offset":
			a.SecondOffset = uint32(num(v))
		case "--tags_offset":
			a.TagsOffset = uint32(num(v))
		case "--dtb_offset":
			a.DTBOffset = num(v)
		case "--pagesize":
			a.PageSize = uint32(num(v))
		case "--ramdisk_type":
			frag.Type = map[string]uint32{"none": 0, "platform": 1, "recovery": 2, "dlkm": 3}[v]
		case "--ramdisk_name":
			frag.Name = v
		case "--vendor_ramdisk_fragment":
			frag.Data = part(v)
			a.VendorRamdiskFragments = append(a.VendorRamdiskFragments, frag)
			frag = RamdiskFragment{}
		default:
			if strings.HasPrefix(k, "--board_id") {
				frag.BoardID[num(strings.TrimPrefix(k, "--board_id"))] = uint32(num(v))
				continue
			}
			t.Fatalf("unknown flag %s", k)
		}
	}
	return &a
}

// TestBuildMatchesMkbootimg builds images from the same parts and arguments with our Build and with the
// real tools (AOSP mkbootimg for v0–v4 and vendor_boot; Debian's mkbootimg 29 with Legacy) and wants
// identical bytes.
func TestBuildMatchesMkbootimg(t *testing.T) {
	files := map[string][]byte{
		"kernel": randBytes(1, 300001), "ramdisk": randBytes(2, 5555), "second": randBytes(3, 4097),
		"dt": randBytes(4, 6000), "recovery_dtbo": randBytes(5, 3000), "dtb": randBytes(6, 2049),
		"vendor_ramdisk": randBytes(7, 7000), "frag1": randBytes(8, 1234), "frag2": randBytes(9, 99),
		"bootconfig": []byte("androidboot.hardware=armani\nandroidboot.serialno=1234\n"),
	}
	long := strings.Repeat("console=ttyMSM0 ", 40)[:600] // spills into extra_cmdline
	longer := strings.Repeat("a=b ", 300)[:1100]
	cases := []struct {
		name, tool string
		flags      []string
	}{
		{"v0-debian", "mkbootimg", []string{"--kernel", "kernel", "--ramdisk", "ramdisk", "--cmdline", long, "--base", "0", "--pagesize", "2048", "--board", "armani", "--ramdisk_offset", "0x01000000"}},
		{"v0-aosp-defaults-second", "aosp-mkbootimg", []string{"--kernel", "kernel", "--ramdisk", "ramdisk", "--second", "second", "--cmdline", long, "--board", "armani"}},
		{"v0-aosp-dt", "aosp-mkbootimg", []string{"--kernel", "kernel", "--ramdisk", "ramdisk", "--dt", "dt", "--base", "0x80000000", "--pagesize", "4096", "--os_version", "4.4.4", "--os_patch_level", "2015-06"}},
		{"v1-aosp", "aosp-mkbootimg", []string{"--header_version", "1", "--kernel", "kernel", "--ramdisk", "ramdisk", "--second", "second", "--recovery_dtbo", "recovery_dtbo", "--pagesize", "2048", "--os_version", "9", "--os_patch_level", "2019-03-05"}},
		// Debian's mkbootimg 29 cannot write a recovery_dtbo under Python 3 (its page count is a float).
		{"v2-debian", "mkbootimg", []string{"--header_version", "2", "--kernel", "kernel", "--ramdisk", "ramdisk", "--dtb", "dtb", "--cmdline", longer, "--pagesize", "4096", "--base", "0", "--os_version", "11.0.0", "--os_patch_level", "2023-11"}},
		{"v2-aosp", "aosp-mkbootimg", []string{"--header_version", "2", "--kernel", "kernel", "--ramdisk", "ramdisk", "--dtb", "dtb", "--recovery_dtbo", "recovery_dtbo", "--cmdline", longer, "--pagesize", "8192", "--dtb_offset", "0x02000000", "--board", "lavender"}},
		{"v2-aosp-no-ramdisk", "aosp-mkbootimg", []string{"--header_version", "2", "--kernel", "kernel", "--dtb", "dtb", "--pagesize", "2048"}},
		{"v3-aosp", "aosp-mkbootimg", []string{"--header_version", "3", "--kernel", "kernel", "--ramdisk", "ramdisk", "--cmdline", longer, "--os_version", "12.1.0", "--os_patch_level", "2022-05"}},
		{"v3-debian", "mkbootimg", []string{"--header_version", "3", "--kernel", "kernel", "--ramdisk", "ramdisk", "--cmdline", "console=ttyMSM0", "--os_version", "12.0.0", "--os_patch_level", "2023-11"}},
		{"v4-aosp", "aosp-mkbootimg", []string{"--header_version", "4", "--kernel", "kernel", "--ramdisk", "ramdisk", "--cmdline", "console=ttyMSM0 androidboot.hardware=qcom", "--os_version", "13.0.0", "--os_patch_level", "2023-11"}},
		{"vendor-v3-aosp", "aosp-mkbootimg", []string{"--header_version", "3", "--vendor_boot", "--vendor_ramdisk", "vendor_ramdisk", "--dtb", "dtb", "--vendor_cmdline", "androidboot.selinux=permissive", "--board", "armani", "--pagesize", "2048", "--base", "0"}},
		{"vendor-v3-debian", "mkbootimg", []string{"--header_version", "3", "--vendor_boot", "--vendor_ramdisk", "vendor_ramdisk", "--dtb", "dtb", "--vendor_cmdline", "x=y", "--board", "armani", "--pagesize", "4096"}},
		{"vendor-v4-aosp", "aosp-mkbootimg", []string{"--header_version", "4", "--vendor_boot", "--vendor_ramdisk", "vendor_ramdisk", "--dtb", "dtb", "--vendor_cmdline", "androidboot.selinux=permissive", "--board", "armani", "--pagesize", "4096", "--base", "0", "--vendor_bootconfig", "bootconfig",
			"--ramdisk_type", "dlkm", "--ramdisk_name", "dlkm", "--board_id0", "0x1234", "--board_id15", "7", "--vendor_ramdisk_fragment", "frag1",
			"--ramdisk_type", "recovery", "--ramdisk_name", "recovery", "--vendor_ramdisk_fragment", "frag2"}},
	}
	dir := t.TempDir()
	for name, b := range files {
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			validators.Tool(t, c.tool)
			a := argsFromFlags(t, c.flags, files)
			a.Legacy = c.tool == "mkbootimg"
			out := filepath.Join(t.TempDir(), "their.img")
			var argv []string
			for i := 0; i < len(c.flags); i++ {
				f := c.flags[i]
				if f == "--vendor_boot" {
					continue
				}
				v := c.flags[i+1]
				i++
				if _, ok := files[v]; ok && f != "--cmdline" && f != "--ramdisk_name" && f != "--ramdisk_type" {
					v = filepath.Join(dir, v)
				}
				argv = append(argv, f, v)
			}
			if a.VendorBoot {
				argv = append(argv, "--vendor_boot", out)
			} else {
				argv = append(argv, "--output", out)
			}
			validators.Run(t, c.tool, argv...)
			want, _ := os.ReadFile(out)
			o, err := Build(a)
			if err != nil {
				t.Fatal(err)
			}
			got, err := o.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Build differs from %s at byte %d (%d vs %d bytes)", c.tool, firstDiff(got, want), len(got), len(want))
			}
			// What we build also round-trips through our own unpack and repack.
			im, err := Parse(bytes.NewReader(got), int64(len(got)))
			if err != nil {
				t.Fatal(err)
			}
			ud := t.TempDir()
			if _, err := im.Unpack(context.Background(), ud); err != nil {
				t.Fatal(err)
			}
			if _, re := repackBytes(t, ud); !bytes.Equal(re, got) {
				t.Fatalf("round trip of the built image differs at %d", firstDiff(re, got))
			}
		})
	}
}

func TestBuildRejectsBadArgs(t *testing.T) {
	k := bytesImage([]byte("k"))
	for name, a := range map[string]Args{
		"version 5":        {HeaderVersion: 5, Kernel: k, PageSize: 2048},
		"page 1000":        {Kernel: k, PageSize: 1000},
		"dt with v2":       {HeaderVersion: 2, Kernel: k, DT: k, DTB: k, PageSize: 2048},
		"second with v3":   {HeaderVersion: 3, Kernel: k, Second: k},
		"v2 without dtb":   {HeaderVersion: 2, Kernel: k, PageSize: 2048},
		"long board":       {Kernel: k, PageSize: 2048, Board: "0123456789abcdef"},
		"bad os version":   {Kernel: k, PageSize: 2048, OSVersion: "200.1"},
		"bad patch level":  {Kernel: k, PageSize: 2048, OSPatchLevel: "23-11"},
		"long cmdline":     {Kernel: k, PageSize: 2048, Cmdline: strings.Repeat("x", 1535)},
		"vendor v2":        {VendorBoot: true, HeaderVersion: 2, PageSize: 2048},
		"vendor v3 no rd":  {VendorBoot: true, HeaderVersion: 3, PageSize: 2048},
		"address overflow": {Kernel: k, PageSize: 2048, Base: 0xffffffff, KernelOffset: 0x8000},
	} {
		if _, err := Build(&a); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
