package bootimg

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/validators"
)

// bootFixtures are the images make-fixtures.sh builds with Debian mkbootimg (v0, v2), abootimg (v0),
// AOSP mkbootimg (v0 with a QCOM dt, v3, v4, vendor_boot v4) and avbtool (boot v2 with a hash footer
// in a 16 MiB partition image).
var bootFixtures = []string{
	"boot/boot-v0.img", "boot/boot-v0-abootimg.img", "boot/boot-v0-dt.img", "boot/boot-v2.img",
	"boot/boot-v3.img", "boot/boot-v4.img", "boot/boot-v4-new.img", "boot/vendor_boot-v4.img", "avb/boot.img",
}

func parseFile(t *testing.T, path string) (*Image, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	im, err := Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return im, b
}

func repackBytes(t *testing.T, dir string) (*Output, []byte) {
	t.Helper()
	o, err := Repack(context.Background(), dir)
	if err != nil {
		t.Fatalf("repack %s: %v", dir, err)
	}
	defer o.Close()
	b, err := o.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	var w bytes.Buffer
	if n, err := o.WriteTo(&w); err != nil || n != int64(len(b)) || !bytes.Equal(w.Bytes(), b) {
		t.Fatalf("WriteTo (%d, %v) disagrees with ReadAt", n, err)
	}
	return o, b
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestFixturesRoundTrip(t *testing.T) {
	fx := validators.Fixtures(t)
	for _, name := range bootFixtures {
		t.Run(name, func(t *testing.T) {
			im, orig := parseFile(t, filepath.Join(fx, name))
			dir := t.TempDir()
			files, err := im.Unpack(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) < 2 {
				t.Fatalf("unpack wrote only %v", files)
			}
			_, got := repackBytes(t, dir)
			if !bytes.Equal(got, orig) {
				t.Fatalf("repack of an unmodified unpack differs: %d vs %d bytes, first difference at %d", len(got), len(orig), firstDiff(got, orig))
			}
		})
	}
}

// TestUnpackMatchesAOSP compares every part we unpack with what AOSP unpack_bootimg extracts, and our
// header fields with the mkbootimg arguments it derives from the header.
func TestUnpackMatchesAOSP(t *testing.T) {
	validators.Tool(t, "aosp-unpack_bootimg")
	fx := validators.Fixtures(t)
	for _, name := range []string{"boot/boot-v0.img", "boot/boot-v2.img", "boot/boot-v3.img", "boot/boot-v4.img", "boot/vendor_boot-v4.img", "avb/boot.img"} {
		t.Run(name, func(t *testing.T) {
			im, _ := parseFile(t, filepath.Join(fx, name))
			ours, theirs := t.TempDir(), t.TempDir()
			if _, err := im.Unpack(context.Background(), ours); err != nil {
				t.Fatal(err)
			}
			out := validators.Run(t, "aosp-unpack_bootimg", "--boot_img", filepath.Join(fx, name), "--out", theirs, "--format=mkbootimg", "-0")
			ents, _ := os.ReadDir(theirs)
			compared := 0
			for _, e := range ents {
				if e.IsDir() {
					continue // vendor-ramdisk-by-name symlinks
				}
				tb, _ := os.ReadFile(filepath.Join(theirs, e.Name()))
				ob, err := os.ReadFile(filepath.Join(ours, e.Name()))
				if err != nil && len(tb) == 0 {
					continue // AOSP writes empty files for absent sections (bootconfig); we leave them out
				}
				if err != nil || !bytes.Equal(ob, tb) {
					t.Errorf("%s: ours (%d bytes, %v) differs from AOSP unpack_bootimg's (%d bytes)", e.Name(), len(ob), err, len(tb))
				}
				compared++
			}
			if compared < 2 {
				t.Fatalf("compared only %d parts", compared)
			}
			checkMkbootimgArgs(t, im.Header, strings.Split(strings.TrimSuffix(out, "\x00"), "\x00"))
		})
	}
}

func checkMkbootimgArgs(t *testing.T, h *Header, args []string) {
	t.Helper()
	num := func(v string) uint64 {
		n, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			t.Fatalf("unpack_bootimg printed %q", v)
		}
		return n
	}
	want := map[string]string{}
	boardIDs := 0
	for i := 0; i+1 < len(args); i += 2 {
		k, v := args[i], args[i+1]
		switch k {
		case "--kernel", "--ramdisk", "--dtb", "--second", "--recovery_dtbo", "--vendor_bootconfig", "--vendor_ramdisk", "--vendor_ramdisk_fragment":
			continue
		case "--base":
			if num(v) != 0 {
				t.Errorf("base %s", v)
			}
			continue
		}
		if strings.HasPrefix(k, "--board_id") {
			boardIDs++
		}
		want[k] = v
	}
	check := func(flag string, got any) {
		t.Helper()
		v, ok := want[flag]
		if !ok {
			t.Errorf("unpack_bootimg gave no %s (we have %v)", flag, got)
			return
		}
		var g string
		switch x := got.(type) {
		case string:
			g = x
		case uint32:
			if num(v) != uint64(x) {
				t.Errorf("%s: AOSP %s, ours %d", flag, v, x)
			}
			return
		case uint64:
			if num(v) != x {
				t.Errorf("%s: AOSP %s, ours %d", flag, v, x)
			}
			return
		}
		if g != v {
			t.Errorf("%s: AOSP %q, ours %q", flag, v, g)
		}
	}
	check("--header_version", fmt.Sprint(h.HeaderVersion))
	if h.OSVersion != "" {
		check("--os_version", h.OSVersion)
	}
	if h.OSPatchLevel != "" {
		check("--os_patch_level", h.OSPatchLevel)
	}
	if h.Kind == KindVendorBoot {
		check("--pagesize", h.PageSize)
		check("--kernel_offset", h.KernelAddr)
		check("--ramdisk_offset", h.RamdiskAddr)
		check("--tags_offset", h.TagsAddr)
		check("--dtb_offset", h.DTBAddr)
		check("--vendor_cmdline", h.Cmdline)
		check("--board", h.Name)
		if len(h.VendorRamdisks) > 0 {
			e := h.VendorRamdisks[len(h.VendorRamdisks)-1] // argparse keeps the last repeat
			check("--ramdisk_type", fmt.Sprint(e.Type))
			check("--ramdisk_name", e.Name)
		}
		nonzero := 0
		for _, e := range h.VendorRamdisks {
			for _, b := range e.BoardID {
				if b != 0 {
					nonzero++
				}
			}
		}
		if nonzero != boardIDs {
			t.Errorf("board_id words: AOSP lists %d non-zero, we have %d", boardIDs, nonzero)
		}
		return
	}
	if h.HeaderVersion >= 3 {
		check("--cmdline", h.Cmdline)
		return
	}
	check("--pagesize", h.PageSize)
	check("--kernel_offset", h.KernelAddr)
	check("--ramdisk_offset", h.RamdiskAddr)
	check("--second_offset", h.SecondAddr)
	check("--tags_offset", h.TagsAddr)
	check("--board", h.Name)
	check("--cmdline", h.FullCmdline())
	if h.HeaderVersion == 2 {
		check("--dtb_offset", h.DTBAddr)
	}
}

// TestAbootimgInfo checks our v0 header reading (including the QCOM dt variant AOSP cannot read)
// against abootimg -i.
func TestAbootimgInfo(t *testing.T) {
	validators.Tool(t, "abootimg")
	fx := validators.Fixtures(t)
	field := func(out, re string) string {
		m := regexp.MustCompile(re).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("abootimg -i output lacks %s:\n%s", re, out)
		}
		return m[1]
	}
	for _, name := range []string{"boot/boot-v0.img", "boot/boot-v0-abootimg.img", "boot/boot-v0-dt.img"} {
		t.Run(name, func(t *testing.T) {
			im, _ := parseFile(t, filepath.Join(fx, name))
			h := im.Header
			out := validators.Run(t, "abootimg", "-i", filepath.Join(fx, name))
			eq := func(what, got, want string) {
				if got != want {
					t.Errorf("%s: abootimg %q, ours %q", what, want, got)
				}
			}
			eq("page size", fmt.Sprint(h.PageSize), field(out, `page size\s*=\s*(\d+)`))
			eq("name", h.Name, field(out, `Boot Name = "([^"]*)"`))
			eq("kernel size", fmt.Sprint(h.KernelSize), field(out, `kernel size\s*=\s*(\d+)`))
			eq("ramdisk size", fmt.Sprint(h.RamdiskSize), field(out, `ramdisk size\s*=\s*(\d+)`))
			eq("kernel addr", fmt.Sprintf("0x%08x", h.KernelAddr), field(out, `kernel:\s*(0x[0-9a-f]+)`))
			eq("ramdisk addr", fmt.Sprintf("0x%08x", h.RamdiskAddr), field(out, `ramdisk:\s*(0x[0-9a-f]+)`))
			eq("tags addr", fmt.Sprintf("0x%08x", h.TagsAddr), field(out, `tags:\s*(0x[0-9a-f]+)`))
			eq("cmdline", h.FullCmdline(), field(out, `cmdline = (.*)\n`))
			var words []string
			for i := 0; i < 32; i += 4 {
				words = append(words, fmt.Sprintf("0x%08x", le32(h.ID[:], i)))
			}
			eq("id", strings.Join(words, " "), strings.TrimSpace(field(out, `id = (.*)\n`)))
		})
	}
}

// TestDebianUnpack checks kernel and ramdisk against Debian's unpack_bootimg (v0 and v2).
func TestDebianUnpack(t *testing.T) {
	validators.Tool(t, "unpack_bootimg")
	fx := validators.Fixtures(t)
	for _, name := range []string{"boot/boot-v0.img", "boot/boot-v2.img"} {
		im, _ := parseFile(t, filepath.Join(fx, name))
		theirs := t.TempDir()
		validators.Run(t, "unpack_bootimg", "--boot_img", filepath.Join(fx, name), "--out", theirs)
		for _, sec := range []string{SecKernel, SecRamdisk} {
			want, _ := os.ReadFile(filepath.Join(theirs, sec))
			var got bytes.Buffer
			if _, err := got.ReadFrom(im.Open(sec)); err != nil || !bytes.Equal(got.Bytes(), want) || len(want) == 0 {
				t.Errorf("%s %s: %d bytes, Debian unpack_bootimg %d (%v)", name, sec, got.Len(), len(want), err)
			}
		}
	}
}

// TestRepackEditedRamdisk replaces the ramdisk of each fixture and checks the repack against AOSP
// mkbootimg given the same parts: same layout, sizes and (for v0–v2) an id computed the AOSP way.
func TestRepackEditedRamdisk(t *testing.T) {
	validators.Tool(t, "aosp-mkbootimg")
	validators.Tool(t, "aosp-unpack_bootimg")
	fx := validators.Fixtures(t)
	newRamdisk := bytes.Repeat([]byte("edited ramdisk "), 700) // 10500 bytes: more pages than before
	for _, name := range []string{"boot/boot-v0.img", "boot/boot-v2.img", "boot/boot-v3.img", "boot/boot-v4.img", "boot/vendor_boot-v4.img"} {
		t.Run(name, func(t *testing.T) {
			im, _ := parseFile(t, filepath.Join(fx, name))
			dir := t.TempDir()
			if _, err := im.Unpack(context.Background(), dir); err != nil {
				t.Fatal(err)
			}
			rd := SecRamdisk
			if im.Header.Kind == KindVendorBoot {
				rd = vendorRamdiskFile(0)
			}
			if err := os.WriteFile(filepath.Join(dir, rd), newRamdisk, 0o644); err != nil {
				t.Fatal(err)
			}
			_, got := repackBytes(t, dir)
			ours := filepath.Join(t.TempDir(), "ours.img")
			os.WriteFile(ours, got, 0o644)
			// Their rebuild from the same parts: unpack our output, feed mkbootimg its own arguments.
			u := t.TempDir()
			args := validators.Run(t, "aosp-unpack_bootimg", "--boot_img", ours, "--out", u, "--format=mkbootimg", "-0")
			if b, _ := os.ReadFile(filepath.Join(u, filepath.Base(rd))); !bytes.Equal(b, newRamdisk) {
				t.Fatalf("AOSP unpack_bootimg does not find the new ramdisk in our repack")
			}
			argv := strings.Split(strings.TrimSuffix(args, "\x00"), "\x00")
			re := filepath.Join(t.TempDir(), "re.img")
			if im.Header.Kind == KindVendorBoot {
				argv = append(argv, "--vendor_boot", re)
			} else {
				argv = append(argv, "--output", re)
			}
			validators.Run(t, "aosp-mkbootimg", argv...)
			want, _ := os.ReadFile(re)
			if !bytes.Equal(got, want) {
				t.Fatalf("repack with a new ramdisk differs from AOSP mkbootimg at byte %d (%d vs %d bytes)", firstDiff(got, want), len(got), len(want))
			}
			if im.Header.Kind == KindBoot && im.Header.HeaderVersion < 3 && bytes.Equal(got[576:608], make([]byte, 32)) {
				t.Fatal("id not recomputed")
			}
		})
	}
}

// TestRepackAVBTail: an unmodified boot partition image with an AVB hash footer round-trips (checked
// above); once a part changes the stale footer is dropped with a note, and the sections still parse.
func TestRepackAVBTail(t *testing.T) {
	fx := validators.Fixtures(t)
	im, orig := parseFile(t, filepath.Join(fx, "avb/boot.img"))
	if !im.HasAVBFooter() || im.Info().TailSize == 0 {
		t.Fatalf("avb/boot.img: footer %v, tail %d", im.HasAVBFooter(), im.Info().TailSize)
	}
	dir := t.TempDir()
	if _, err := im.Unpack(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, TailFile)); err != nil || st.Size() != int64(len(orig))-im.End {
		t.Fatalf("tail file: %v", err)
	}
	if validators.Have("avbtool") {
		// An unmodified repack carries the footer: avbtool still verifies the boot hash.
		_, b := repackBytes(t, dir)
		p := filepath.Join(t.TempDir(), "boot.img")
		os.WriteFile(p, b, 0o644)
		if out, err := validators.RunErr("avbtool", "info_image", "--image", p); err != nil || !strings.Contains(out, "Hash descriptor") {
			t.Fatalf("avbtool info_image on the unmodified repack: %v\n%s", err, out)
		}
	}
	os.WriteFile(filepath.Join(dir, SecKernel), []byte("new kernel"), 0o644)
	o, got := repackBytes(t, dir)
	if len(o.Notes) == 0 || !strings.Contains(o.Notes[0], "AVB footer") {
		t.Fatalf("notes %q: want the dropped AVB footer mentioned", o.Notes)
	}
	im2, err := Parse(bytes.NewReader(got), int64(len(got)))
	if err != nil || im2.HasAVBFooter() || im2.Header.KernelSize != 10 || im2.End != int64(len(got)) {
		t.Fatalf("edited repack: %v, footer %v", err, im2 != nil && im2.HasAVBFooter())
	}
}

func TestIDRecipes(t *testing.T) {
	fx := validators.Fixtures(t)
	// Debian's mkbootimg wrote boot-v0.img (legacy recipe); AOSP's wrote boot-v0-dt.img (dt hashed).
	for _, c := range []struct {
		name   string
		legacy bool
	}{{"boot/boot-v0.img", true}, {"boot/boot-v2.img", true}, {"boot/boot-v0-dt.img", false}} {
		im, _ := parseFile(t, filepath.Join(fx, c.name))
		parts := map[string]image.Image{}
		for _, s := range im.Sections {
			parts[s.Name] = im.Open(s.Name)
		}
		id, err := computeID(im.Header, parts, c.legacy)
		if err != nil || id != im.Header.ID {
			t.Errorf("%s: recomputed id %s, header has %s (%v)", c.name, hex.EncodeToString(id[:20]), hex.EncodeToString(im.Header.ID[:20]), err)
		}
	}
}

// TestRepackEditedHeaderJSON: changing a header field in header.json changes only that field; the id
// (which covers the sections, not the command line) is kept.
func TestRepackEditedHeaderJSON(t *testing.T) {
	fx := validators.Fixtures(t)
	im, orig := parseFile(t, filepath.Join(fx, "boot/boot-v2.img"))
	dir := t.TempDir()
	if _, err := im.Unpack(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, HeaderFile)
	js, _ := os.ReadFile(p)
	edited := strings.Replace(string(js), `"cmdline": "console=ttyMSM0,115200n8`, `"cmdline": "console=ttyMSM0,115200n8 androidboot.selinux=permissive`, 1)
	edited = strings.Replace(edited, `"os_patch_level": "2023-11"`, `"os_patch_level": "2024-01"`, 1)
	if edited == string(js) {
		t.Fatal("header.json did not contain the expected fields")
	}
	os.WriteFile(p, []byte(edited), 0o644)
	_, got := repackBytes(t, dir)
	back, err := Parse(bytes.NewReader(got), int64(len(got)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(back.Header.Cmdline, "115200n8 androidboot.selinux=permissive androidboot.hardware") || back.Header.OSPatchLevel != "2024-01" || back.Header.ID != im.Header.ID {
		t.Fatalf("edited header: %+v", back.Header)
	}
	if len(got) != len(orig) || !bytes.Equal(got[608:], orig[608:]) || !bytes.Equal(got[:44], orig[:44]) {
		t.Fatal("bytes outside the edited fields changed")
	}
}
