package avb

import (
	"bytes"
	"context"
	"crypto"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/image"
)

// Every AVB fixture avbtool made reads back with the same fields avbtool prints.
func TestInfoMatchesAvbtool(t *testing.T) {
	dir := fx(t)
	for _, name := range []string{"vbmeta", "vbmeta_system", "vbmeta-unsigned", "vbmeta-disabled", "vbmeta-signed-disabled", "boot", "system"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "avb", name+".img")
			img := loadFile(t, path)
			want := readFile(t, filepath.Join(dir, "expected", "avb-"+name+".info_image.txt"))
			// expected/ holds avbtool info_image's own output for each fixture
			compareLines(t, name, textOf(t, img), string(want))
		})
	}
}

func TestInfoFields(t *testing.T) {
	dir := fx(t)
	img := loadFile(t, filepath.Join(dir, "avb", "vbmeta.img"))
	i := img.Info()
	if i.Algorithm != "SHA256_RSA4096" || i.RollbackIndex != 3 || i.Flags != 0 || i.RollbackIndexLocation != 0 ||
		i.ReleaseString != "avbtool 1.3.0" || i.PublicKeySHA1 != "55675f67a5d087cba7b3fd3af365135fe42c600b" || i.Footer != nil {
		t.Fatalf("vbmeta info: %+v", i)
	}
	pk := readFile(t, filepath.Join(dir, "avb", "testkey_rsa4096.avbpubkey"))
	if i.PublicKeySHA256 != digestHex(crypto.SHA256, pk) {
		t.Fatalf("public_key_sha256 %s", i.PublicKeySHA256)
	}
	if len(i.Descriptors) != 2 || i.Descriptors[0].Type != "chain_partition" || i.Descriptors[0].PartitionName != "vbmeta_system" ||
		*i.Descriptors[0].RollbackIndexLocation != 1 || i.Descriptors[0].PublicKeySHA1 != "d907d424b5795fbf4445f0c51ac09bebfee1e384" ||
		i.Descriptors[1].Type != "hash" || *i.Descriptors[1].ImageSize != 278528 || *i.Descriptors[1].Digest != "1c32b2b476854fcf7e6fd6ea72b92635178f12239711b71784dd2cd35c6a4cd1" {
		t.Fatalf("descriptors: %+v", i.Descriptors)
	}
	sys := loadFile(t, filepath.Join(dir, "avb", "system.img")).Info()
	if sys.Footer == nil || sys.Footer.OriginalImageSize != 16777216 || sys.Footer.VBMetaOffset != 16912384 || sys.Footer.VBMetaSize != 512 ||
		sys.ImageSize != 20971520 || sys.Descriptors[0].Type != "hashtree" || *sys.Descriptors[0].TreeSize != 135168 ||
		*sys.Descriptors[0].RootDigest != "ee12ef66458390e223ce07c8190a62fa445932a7e6dd29f143f5f7868010c45c" {
		t.Fatalf("system info: %+v %+v", sys.Footer, sys.Descriptors)
	}
	if !loadFile(t, filepath.Join(dir, "avb", "vbmeta-disabled.img")).Info().HashtreeDisabled {
		t.Fatal("flags 3 not reported as hashtree disabled")
	}
}

// SetFlags gives exactly the bytes of make_vbmeta_image --flags 3 (and of what fastboot sends).
func TestSetFlagsMatchesFixture(t *testing.T) {
	dir := fx(t)
	b := readFile(t, filepath.Join(dir, "avb", "vbmeta-unsigned.img"))
	if err := SetFlags(b, FlagHashtreeDisabled|FlagVerificationDisabled); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, readFile(t, filepath.Join(dir, "avb", "vbmeta-disabled.img"))) {
		t.Fatal("SetFlags(3) differs from vbmeta-disabled.img")
	}
	if err := SetFlags([]byte("AVB1"), 3); err == nil {
		t.Fatal("SetFlags accepted garbage")
	}
}

func includeFrom(t *testing.T, path string) *VBMeta { return loadFile(t, path).VBMeta }

func loadKey(t *testing.T, bits string) (keyPEM []byte, sign SignOptions) {
	t.Helper()
	keyPEM = readFile(t, keyFile(t, bits))
	k, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return keyPEM, SignOptions{Key: k}
}

// Sign with the inputs make-fixtures.sh gave avbtool reproduces its vbmeta images byte for byte.
func TestSignMatchesAvbtoolFixtures(t *testing.T) {
	dir := fx(t)
	avb := func(n string) string { return filepath.Join(dir, "avb", n) }
	_, k4 := loadKey(t, "4096")
	_, k2 := loadKey(t, "2048")
	pk2 := readFile(t, avb("testkey_rsa2048.avbpubkey"))
	cases := map[string]SignOptions{
		"vbmeta.img": {Algorithm: AlgorithmSHA256RSA4096, Key: k4.Key, RollbackIndex: 3, Include: []*VBMeta{includeFrom(t, avb("boot.img"))},
			Chains: []ChainPartition{{Name: "vbmeta_system", Location: 1, PublicKey: pk2}}, PaddingSize: 4096},
		"vbmeta_system.img":   {Algorithm: AlgorithmSHA256RSA2048, Key: k2.Key, RollbackIndex: 2, Include: []*VBMeta{includeFrom(t, avb("system.img"))}, PaddingSize: 4096},
		"vbmeta-unsigned.img": {Include: []*VBMeta{includeFrom(t, avb("boot.img")), includeFrom(t, avb("system.img"))}, PaddingSize: 4096},
		"vbmeta-disabled.img": {Flags: 3, Include: []*VBMeta{includeFrom(t, avb("boot.img")), includeFrom(t, avb("system.img"))}, PaddingSize: 4096},
		"vbmeta-signed-disabled.img": {Algorithm: AlgorithmSHA256RSA4096, Key: k4.Key, Flags: 3, RollbackIndex: 3, Include: []*VBMeta{includeFrom(t, avb("boot.img"))},
			Chains: []ChainPartition{{Name: "vbmeta_system", Location: 1, PublicKey: pk2}}, PaddingSize: 4096},
	}
	for name, opt := range cases {
		got, err := Sign(opt)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := readFile(t, avb(name)); !bytes.Equal(got, want) {
			t.Errorf("%s: our Sign differs from avbtool's (%d vs %d bytes)", name, len(got), len(want))
		}
	}
}

func TestExtractPublicKeyMatchesAvbtool(t *testing.T) {
	dir := fx(t)
	for _, bits := range []string{"2048", "4096"} {
		got, err := ExtractPublicKey(readFile(t, keyFile(t, bits)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, readFile(t, filepath.Join(dir, "avb", "testkey_rsa"+bits+".avbpubkey"))) {
			t.Fatalf("%s-bit avbpubkey differs from avbtool extract_public_key", bits)
		}
		if _, err := ParsePublicKey(got); err != nil {
			t.Fatal(err)
		}
	}
}

// Verify accepts the fixtures avbtool made and agrees with avbtool's verify_image.
func TestVerifyFixtures(t *testing.T) {
	dir := fx(t)
	avb := func(n string) string { return filepath.Join(dir, "avb", n) }
	top := loadFile(t, avb("vbmeta.img"))
	pk4 := readFile(t, avb("testkey_rsa4096.avbpubkey"))
	pk2 := readFile(t, avb("testkey_rsa2048.avbpubkey"))
	rep, err := Verify(context.Background(), top, nil, VerifyOptions{PublicKey: pk4, Images: DirImages(filepath.Join(dir, "avb"), ".img"),
		ExpectedChains: map[string]ChainPartition{"vbmeta_system": {Location: 1, PublicKey: pk2}}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("fixtures failed verification: %+v", rep.Failed())
	}
	// the chained vbmeta_system and, through it, system's hashtree were checked
	var sawTree, sawHash bool
	for _, c := range rep.Checks {
		sawTree = sawTree || (c.What == "hashtree" && c.OK && c.Partition == "system")
		sawHash = sawHash || (c.What == "hash" && c.OK && c.Partition == "boot")
	}
	if !sawTree || !sawHash {
		t.Fatalf("checks missing: %+v", rep.Checks)
	}
	// wrong expected key → finding
	rep, err = Verify(context.Background(), top, nil, VerifyOptions{PublicKey: pk2})
	if err != nil || rep.OK() {
		t.Fatalf("wrong key accepted: %v %+v", err, rep)
	}
	// a footer image verifies its own content
	boot := loadFile(t, avb("boot.img"))
	bf, _ := image.OpenFile(avb("boot.img"))
	defer bf.Close()
	rep, err = Verify(context.Background(), boot, bf, VerifyOptions{})
	if err != nil || !rep.OK() || rep.Checks[len(rep.Checks)-1].What != "hash" {
		t.Fatalf("boot footer: %v %+v", err, rep)
	}
}

// A changed byte in a partition is a finding, for hash and hashtree alike.
func TestVerifyDetectsTampering(t *testing.T) {
	dir := fx(t)
	tmp := t.TempDir()
	for _, n := range []string{"vbmeta_system.img", "system.img", "boot.img"} {
		copyTo(t, filepath.Join(dir, "avb", n), filepath.Join(tmp, n))
	}
	for _, n := range []string{"system.img", "boot.img"} {
		f, err := os.OpenFile(filepath.Join(tmp, n), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte{0x5a}, 8192+17)
		f.Close()
	}
	vs := loadFile(t, filepath.Join(tmp, "vbmeta_system.img"))
	rep, err := Verify(context.Background(), vs, nil, VerifyOptions{Images: DirImages(tmp, ".img")})
	if err != nil {
		t.Fatal(err)
	}
	if f := rep.Failed(); len(f) != 1 || f[0].What != "hashtree" || !strings.Contains(f[0].Message, "root digest") {
		t.Fatalf("tampered system: %+v", rep.Checks)
	}
	bootImg := loadFile(t, filepath.Join(tmp, "boot.img"))
	bf, _ := image.OpenFile(filepath.Join(tmp, "boot.img"))
	defer bf.Close()
	rep, _ = Verify(context.Background(), bootImg, bf, VerifyOptions{})
	if f := rep.Failed(); len(f) != 1 || f[0].What != "hash" {
		t.Fatalf("tampered boot: %+v", rep.Checks)
	}
	// a flipped byte in the signed header breaks the signature
	raw := readFile(t, filepath.Join(dir, "avb", "vbmeta.img"))
	raw[123] ^= 1
	v, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignature(v); err == nil {
		t.Fatal("modified signed vbmeta passed the signature check")
	}
}

func TestCalculateVBMetaDigest(t *testing.T) {
	dir := fx(t)
	top := loadFile(t, filepath.Join(dir, "avb", "vbmeta.img"))
	d, err := CalculateVBMetaDigest(top.VBMeta, crypto.SHA256, func(name string) (*VBMeta, error) {
		return loadFile(t, filepath.Join(dir, "avb", name+".img")).VBMeta, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(readFile(t, filepath.Join(dir, "expected", "avb-vbmeta.digest.txt"))))
	if hex.EncodeToString(d) != want {
		t.Fatalf("digest %x, avbtool %s", d, want)
	}
}
