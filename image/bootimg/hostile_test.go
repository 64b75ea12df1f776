package bootimg

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"testing"

	"github.com/romforge/romforge/image"

	"github.com/romforge/romforge/internal/failure"
)

// smallImages builds tiny images of every kind (2 KiB pages where the version allows) as seeds and as
// the base for corruption tests.
func smallImages(t testing.TB) map[string][]byte {
	k, r, s := bytesImage([]byte("kernel!")), bytesImage([]byte("070701ramdisk")), bytesImage([]byte("2nd"))
	dtb := bytesImage([]byte{0xd0, 0x0d, 0xfe, 0xed, 1, 2, 3})
	args := map[string]Args{
		"v0":        {Kernel: k, Ramdisk: r, Second: s, PageSize: 2048, Cmdline: "console=ttyHSL0", Board: "armani"},
		"v0-dt":     {Kernel: k, Ramdisk: r, DT: bytesImage(bytes.Repeat([]byte("QCDT"), 9)), PageSize: 2048},
		"v1":        {HeaderVersion: 1, Kernel: k, Ramdisk: r, RecoveryDTBO: dtb, PageSize: 2048, OSVersion: "9.0.0", OSPatchLevel: "2019-01"},
		"v2":        {HeaderVersion: 2, Kernel: k, Ramdisk: r, DTB: dtb, PageSize: 2048},
		"v3":        {HeaderVersion: 3, Kernel: k, Ramdisk: r, Cmdline: "a=b"},
		"v4":        {HeaderVersion: 4, Kernel: k, Ramdisk: r, Signature: bytesImage([]byte("sig"))},
		"vendor-v3": {VendorBoot: true, HeaderVersion: 3, VendorRamdisk: r, DTB: dtb, PageSize: 2048, Board: "armani"},
		"vendor-v4": {VendorBoot: true, HeaderVersion: 4, VendorRamdisk: r, DTB: dtb, PageSize: 2048,
			Bootconfig:             bytesImage([]byte("a=b\n")),
			VendorRamdiskFragments: []RamdiskFragment{{Type: RamdiskTypeDLKM, Name: "dlkm", BoardID: [16]uint32{1}, Data: s}}},
	}
	out := map[string][]byte{}
	for name, a := range args {
		o, err := Build(&a)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := o.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

func put32(b []byte, off int, v uint32) []byte {
	c := bytes.Clone(b)
	binary.LittleEndian.PutUint32(c[off:], v)
	return c
}

func TestHostileImages(t *testing.T) {
	imgs := smallImages(t)
	cases := map[string][]byte{
		"empty":                 {},
		"7 bytes":               []byte("ANDROID"),
		"wrong magic":           append([]byte("ANDROIX!"), imgs["v0"][8:]...),
		"header cut at 40":      imgs["v0"][:40],
		"header cut at 100":     imgs["v2"][:100],
		"v2 header cut at 1650": imgs["v2"][:1650],
		"v3 header cut":         imgs["v3"][:1000],
		"vendor header cut":     imgs["vendor-v4"][:2120],
		"page size 0":           put32(imgs["v0"], 36, 0),
		"page size 1000":        put32(imgs["v2"], 36, 1000),
		"page size 1<<30":       put32(imgs["v0"], 36, 1<<30),
		"vendor page size 0":    put32(imgs["vendor-v4"], 12, 0),
		"kernel beyond file":    put32(imgs["v0"], 8, 0xffffffff),
		"ramdisk beyond file":   put32(imgs["v3"], 12, 1<<20),
		"v4 signature beyond":   put32(imgs["v4"], 1580, 0x7fffffff),
		"dtb beyond file":       put32(imgs["v2"], 1648, 1<<24),
		"dt size beyond file":   put32(imgs["v0-dt"], 40, 1<<24),
		"recovery dtbo offset":  func() []byte { c := bytes.Clone(imgs["v1"]); binary.LittleEndian.PutUint64(c[1636:], 1<<40); return c }(),
		"truncated sections":    imgs["v2"][:len(imgs["v2"])/2+1],
		"vendor version 9":      put32(imgs["vendor-v4"], 8, 9),
		"vendor header_size":    put32(imgs["vendor-v4"], 2096, 0xffffffff),
		"vendor ramdisk size":   put32(imgs["vendor-v4"], 24, 0xfffffff0),
		"table entry size 10":   put32(imgs["vendor-v4"], 2120, 10),
		"table entry num huge":  put32(imgs["vendor-v4"], 2116, 0xffffffff),
		"table size huge":       put32(imgs["vendor-v4"], 2112, 0xffffffff),
		"entry past ramdisks": func() []byte {
			c := bytes.Clone(imgs["vendor-v4"])
			// the table is the fourth page-aligned section: header (2 pages of 2 KiB), ramdisks, dtb
			off := 2*2048 + 2048 + 2048
			binary.LittleEndian.PutUint32(c[off+4:], 1<<20)
			return c
		}(),
	}
	for name, b := range cases {
		im, err := Parse(bytes.NewReader(b), int64(len(b)))
		if err == nil {
			t.Errorf("%s: parsed (%+v), want an error", name, im.Header)
			continue
		}
		if !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: %v is not ErrInvalid", name, err)
		}
	}
}

// TestOddBytesSurvive: garbage after a string's terminator, invalid UTF-8, non-zero reserved words and
// padding, a missing final padding and trailing data all come back byte for byte.
func TestOddBytesSurvive(t *testing.T) {
	imgs := smallImages(t)
	v0 := bytes.Clone(imgs["v0"])
	copy(v0[48+7:], "\xffjunk")        // after "armani\0"
	copy(v0[64+20:], "\x00garbage")    // after the cmdline's NUL
	copy(v0[608:], "\xc3\x28 invalid") // extra_cmdline: invalid UTF-8
	v0[1700] = 0x55                    // header padding
	v0[2048+10] = 0xaa                 // kernel padding
	v0 = append(v0, []byte("SEANDROIDENFORCE")...)
	v3 := put32(imgs["v3"], 28, 0xdeadbeef) // reserved[1]
	v3 = v3[:len(v3)-100]                   // last padding cut short
	vend := bytes.Clone(imgs["vendor-v4"])
	copy(vend[2080+6:], "\x01\x02")
	// Fuzz regression: a header_size of 0 must stay 0 (not become the standard size) when unchanged.
	v1 := put32(imgs["v1"], 1644, 0)
	for name, b := range map[string][]byte{"v0": v0, "v1": v1, "v3": v3, "vendor": vend} {
		im, err := Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := json.Marshal(im.Info()); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if _, err := im.Unpack(context.Background(), dir); err != nil {
			t.Fatal(err)
		}
		if _, got := repackBytes(t, dir); !bytes.Equal(got, b) {
			t.Fatalf("%s: repack differs at %d (%d vs %d bytes)", name, firstDiff(got, b), len(got), len(b))
		}
	}
}

func TestOSVersionPacking(t *testing.T) {
	for _, w := range []uint32{0, 1, 0x7ff, 0x7ff << 11, 0xffffffff, (11<<14|2<<7|3)<<11 | (23<<4 | 11)} {
		v, p := splitOSVersion(w)
		back, err := joinOSVersion(v, p)
		if err != nil || back != w {
			t.Errorf("%#x → %q %q → %#x (%v)", w, v, p, back, err)
		}
	}
	if w, _ := joinOSVersion("13", "2023-11-05"); w != (13<<14)<<11|(23<<4|11) {
		t.Errorf("13 / 2023-11-05 packed to %#x", w)
	}
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// memRoundTrip unpacks into memory and repacks from there: the same code paths as Unpack and Repack
// minus the file system, so fuzzing runs fast.
func memRoundTrip(im *Image) ([]byte, error) {
	files := map[string][]byte{}
	_, err := im.unpackTo(context.Background(), func(name string, r io.Reader, _ bool) (string, int64, error) {
		b, err := io.ReadAll(r)
		if err != nil {
			return "", 0, err
		}
		files[name] = b
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:]), int64(len(b)), nil
	})
	if err != nil {
		return nil, err
	}
	o, err := repackFrom(context.Background(), "mem", files[HeaderFile], func(name string) (image.Image, io.Closer, error) {
		b, ok := files[name]
		if !ok {
			return nil, nil, fs.ErrNotExist
		}
		return bytesImage(b), nopCloser{}, nil
	})
	if err != nil {
		return nil, err
	}
	defer o.Close()
	return o.Bytes()
}

func fuzzRoundTrip(t *testing.T, b []byte) {
	im, err := Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		if !errors.Is(err, failure.ErrInvalid) {
			t.Fatalf("error %v is not ErrInvalid", err)
		}
		return
	}
	if _, err := json.Marshal(im.Info()); err != nil {
		t.Fatal(err)
	}
	got, err := memRoundTrip(im)
	if err != nil {
		t.Fatalf("round trip of a parsed image: %v", err)
	}
	// A recovery_dtbo at a non-standard offset (noted by Parse) moves to the standard place on repack.
	if !bytes.Equal(got, b) && len(im.Notes) == 0 {
		t.Fatalf("round trip differs at %d (%d vs %d bytes)", firstDiff(got, b), len(got), len(b))
	}
}

func FuzzBootImage(f *testing.F) {
	for name, b := range smallImages(f) {
		if name[0] == 'v' && name[1] != 'e' {
			f.Add(b)
		}
	}
	f.Fuzz(fuzzRoundTrip)
}

func FuzzVendorBoot(f *testing.F) {
	imgs := smallImages(f)
	f.Add(imgs["vendor-v3"])
	f.Add(imgs["vendor-v4"])
	f.Fuzz(fuzzRoundTrip)
}
