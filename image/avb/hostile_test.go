package avb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
)

func seedVBMeta(t testing.TB, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// footerSeed makes a small partition: content, the vbmeta struct, and a footer pointing at it.
func footerSeed(vb []byte) []byte {
	content := bytes.Repeat([]byte{0xa5}, 512)
	out := append(append([]byte(nil), content...), vb...)
	f := Footer{VersionMajor: 1, OriginalImageSize: uint64(len(content)), VBMetaOffset: uint64(len(content)), VBMetaSize: uint64(len(vb))}
	return append(out, f.Encode()...)
}

func TestHostileVBMeta(t *testing.T) {
	good := seedVBMeta(t, "vbmeta.img")
	if _, err := Parse(good); err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	aux := int(HeaderSize + binary.BigEndian.Uint64(good[12:]))
	cases := map[string][]byte{
		"empty":          nil,
		"truncated":      good[:100],
		"bad magic":      mod(func(b []byte) []byte { b[3] = 'X'; return b }),
		"cut blocks":     good[:HeaderSize+100],
		"major version":  mod(func(b []byte) []byte { b[7] = 2; return b }),
		"minor too new":  mod(func(b []byte) []byte { b[11] = 99; return b }),
		"unknown alg":    mod(func(b []byte) []byte { b[31] = 42; return b }),
		"aux not 64":     mod(func(b []byte) []byte { b[27] ^= 8; return b }),
		"huge aux":       mod(func(b []byte) []byte { binary.BigEndian.PutUint64(b[20:], 1<<62); return b }),
		"desc overflow":  mod(func(b []byte) []byte { binary.BigEndian.PutUint64(b[96:], ^uint64(0)-5); return b }),
		"sig past block": mod(func(b []byte) []byte { binary.BigEndian.PutUint64(b[48:], 500); return b }),
		"no NUL release": mod(func(b []byte) []byte { copy(b[128:176], bytes.Repeat([]byte{'x'}, 48)); return b }),
		"desc len overrun aux": mod(func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[aux+8:], 1<<40)
			return b
		}),
		"desc len not 8": mod(func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[aux+8:], binary.BigEndian.Uint64(b[aux+8:])+3)
			return b
		}),
		"chain name overrun": mod(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[aux+16+4:], 0xffffffff)
			return b
		}),
		"hash size mismatch": mod(func(b []byte) []byte { b[47] = 20; return b }),
	}
	for name, b := range cases {
		_, err := Parse(b)
		if !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: Parse err = %v, want ErrInvalid", name, err)
		}
		if _, err := Load(image.New(bytes.NewReader(b), int64(len(b)))); !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: Load err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestHostileFooter(t *testing.T) {
	vb := seedVBMeta(t, "vbmeta-unsigned.img")[:768]
	good := footerSeed(vb)
	img, err := Load(image.New(bytes.NewReader(good), int64(len(good))))
	if err != nil || img.Footer == nil || len(img.VBMeta.Descriptors) != 2 {
		t.Fatalf("seed: %v %+v", err, img)
	}
	n := len(good)
	mod := func(f func(b []byte)) []byte { b := append([]byte(nil), good...); f(b); return b }
	cases := map[string][]byte{
		"version 2":        mod(func(b []byte) { b[n-64+7] = 2 }),
		"orig beyond":      mod(func(b []byte) { binary.BigEndian.PutUint64(b[n-64+12:], 1<<50) }),
		"vbmeta beyond":    mod(func(b []byte) { binary.BigEndian.PutUint64(b[n-64+20:], uint64(n)) }),
		"vbmeta wraps":     mod(func(b []byte) { binary.BigEndian.PutUint64(b[n-64+28:], ^uint64(0)) }),
		"vbmeta too small": mod(func(b []byte) { binary.BigEndian.PutUint64(b[n-64+28:], 100) }),
		"vbmeta not there": mod(func(b []byte) { binary.BigEndian.PutUint64(b[n-64+20:], 0) }),
		"vbmeta cut by size": mod(func(b []byte) {
			binary.BigEndian.PutUint64(b[n-64+28:], 300)
		}),
	}
	for name, b := range cases {
		if _, err := Load(image.New(bytes.NewReader(b), int64(len(b)))); !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := ReadFooter(image.New(bytes.NewReader(vb), int64(len(vb)))); !errors.Is(err, ErrNoFooter) || !errors.Is(err, failure.ErrInvalid) {
		t.Fatalf("no footer: %v", err)
	}
}

func TestHostilePublicKey(t *testing.T) {
	for name, b := range map[string][]byte{
		"short":        {0, 0},
		"0 bits":       make([]byte, 8),
		"odd bits":     {0, 0, 0, 7, 0, 0, 0, 0},
		"huge":         {0, 1, 0, 0, 0, 0, 0, 0},
		"wrong length": append([]byte{0, 0, 8, 0, 0, 0, 0, 0}, make([]byte, 10)...),
	} {
		if _, err := ParsePublicKey(b); !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParsePrivateKeyPEM([]byte("not pem")); !errors.Is(err, failure.ErrInvalid) {
		t.Fatal("garbage key accepted")
	}
}

// Descriptors we do not know survive a parse/encode round trip, and known ones re-encode byte-exactly.
func TestDescriptorRoundTrip(t *testing.T) {
	for _, name := range []string{"vbmeta.img", "vbmeta_system.img", "vbmeta-unsigned.img"} {
		b := seedVBMeta(t, name)
		v, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		var enc []byte
		for _, d := range v.Descriptors {
			enc = append(enc, EncodeDescriptor(d)...)
		}
		aux := v.Raw[HeaderSize+v.AuthBlockSize:]
		if !bytes.Equal(enc, aux[v.DescriptorsOffset:v.DescriptorsOffset+v.DescriptorsSize]) {
			t.Fatalf("%s: descriptors do not re-encode identically", name)
		}
	}
	u := &UnknownDescriptor{TagValue: 99, Data: []byte("12345678")}
	p := &PropertyDescriptor{Key: "com.example.k", Value: []byte("v\x00'\"\xff")}
	c := &KernelCmdlineDescriptor{Flags: CmdlineFlagIfHashtreeDisabled, Cmdline: "root=/dev/dm-0"}
	vb, err := Sign(SignOptions{Descriptors: []Descriptor{u, p, c}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := Parse(vb)
	if err != nil {
		t.Fatal(err)
	}
	gu, ok1 := v.Descriptors[0].(*UnknownDescriptor)
	gp, ok2 := v.Descriptors[1].(*PropertyDescriptor)
	gc, ok3 := v.Descriptors[2].(*KernelCmdlineDescriptor)
	if !ok1 || !ok2 || !ok3 || gu.TagValue != 99 || !bytes.Equal(gu.Data, u.Data) || gp.Key != p.Key || !bytes.Equal(gp.Value, p.Value) || *gc != *c {
		t.Fatalf("round trip: %+v", v.Descriptors)
	}
	if i := v.Info(); i.Descriptors[1].ValueHex == "" || i.Descriptors[2].Type != "kernel_cmdline" || i.Descriptors[0].Type != "unknown" {
		t.Fatalf("info: %+v", i.Descriptors)
	}
}
