package avb

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/validators"
)

// Sign equals avbtool make_vbmeta_image for every algorithm, with properties, kernel command lines,
// chains, rollback index location and flags; avbtool verifies ours and we verify its.
func TestSignAgainstLiveAvbtool(t *testing.T) {
	validators.Tool(t, "avbtool")
	dir := fx(t)
	tmp := t.TempDir()
	pk2 := filepath.Join(dir, "avb", "testkey_rsa2048.avbpubkey")
	cases := []struct {
		alg  Algorithm
		bits string
	}{
		{AlgorithmSHA256RSA2048, "2048"}, {AlgorithmSHA256RSA4096, "4096"},
		{AlgorithmSHA512RSA2048, "2048"}, {AlgorithmSHA512RSA4096, "4096"}, {AlgorithmNone, ""},
	}
	// verify_image looks for boot.img/system.img beside the image
	copyTo(t, filepath.Join(dir, "avb", "boot.img"), filepath.Join(tmp, "boot.img"))
	copyTo(t, filepath.Join(dir, "avb", "system.img"), filepath.Join(tmp, "system.img"))
	for _, c := range cases {
		t.Run(c.alg.String(), func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(tmp, c.alg.String()+".avbtool.img")
			args := []string{"make_vbmeta_image", "--output", out, "--algorithm", c.alg.String(), "--rollback_index", "9",
				"--rollback_index_location", "2", "--flags", "1", "--prop", "com.android.build.x:1.2 'q'", "--prop", "k:",
				"--kernel_cmdline", "androidboot.hardware=armani", "--chain_partition", "vbmeta_system:1:" + pk2,
				"--include_descriptors_from_image", filepath.Join(dir, "avb", "system.img"),
				"--include_descriptors_from_image", filepath.Join(dir, "avb", "boot.img")}
			opt := SignOptions{Algorithm: c.alg, RollbackIndex: 9, RollbackIndexLocation: 2, Flags: 1,
				Properties:     []Property{{"com.android.build.x", []byte("1.2 'q'")}, {"k", nil}},
				KernelCmdlines: []string{"androidboot.hardware=armani"},
				Chains:         []ChainPartition{{Name: "vbmeta_system", Location: 1, PublicKey: readFile(t, pk2)}},
				Include:        []*VBMeta{includeFrom(t, filepath.Join(dir, "avb", "system.img")), includeFrom(t, filepath.Join(dir, "avb", "boot.img"))}}
			if c.bits != "" {
				args = append(args, "--key", keyFile(t, c.bits))
				_, k := loadKey(t, c.bits)
				opt.Key = k.Key
			}
			validators.Run(t, "avbtool", args...)
			ours, err := Sign(opt)
			if err != nil {
				t.Fatal(err)
			}
			theirs := readFile(t, out)
			if !bytes.Equal(ours, theirs) {
				ov, _ := Parse(ours)
				compareLines(t, "info", textOf(t, &Image{VBMeta: ov}), avbInfo(t, out))
				t.Fatal("bytes differ though info agrees")
			}
			// our text rendering equals avbtool's for properties and cmdlines too
			compareLines(t, "info", textOf(t, loadFile(t, out)), avbInfo(t, out))
			v, _ := Parse(ours)
			if err := VerifySignature(v); err != nil {
				t.Fatal(err)
			}
			vargs := []string{"verify_image", "--image", out, "--expected_chain_partition", "vbmeta_system:1:" + pk2}
			if c.bits != "" {
				vargs = append(vargs, "--key", keyFile(t, c.bits))
			}
			if o := validators.Run(t, "avbtool", vargs...); !strings.Contains(o, "Successfully verified") {
				t.Fatal(o)
			}
			rep, err := Verify(context.Background(), &Image{VBMeta: v}, nil, VerifyOptions{Images: DirImages(tmp, ".img")})
			if err != nil || !rep.OK() {
				t.Fatalf("our verify: %v %+v", err, rep.Failed())
			}
		})
	}
}

func TestSignErrors(t *testing.T) {
	_, k2 := loadKey(t, "2048")
	pk, _ := EncodePublicKey(&k2.Key.PublicKey)
	for name, opt := range map[string]SignOptions{
		"no key":        {Algorithm: AlgorithmSHA256RSA2048},
		"key too small": {Algorithm: AlgorithmSHA256RSA4096, Key: k2.Key},
		"chain loc 0":   {Chains: []ChainPartition{{Name: "x", Location: 0, PublicKey: pk}}},
		"chain loc dup": {RollbackIndexLocation: 1, Chains: []ChainPartition{{Name: "x", Location: 1, PublicKey: pk}}},
		"chain bad key": {Chains: []ChainPartition{{Name: "x", Location: 1, PublicKey: []byte("nope")}}},
		"long release":  {ReleaseString: strings.Repeat("r", 48)},
		"unknown alg":   {Algorithm: 17},
		"over 64k":      {Properties: []Property{{"big", make([]byte, 70000)}}},
	} {
		if _, err := Sign(opt); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A chained vbmeta is checked with the chain descriptor's key; chaining further is a finding.
func TestVerifyChainRules(t *testing.T) {
	_, k2 := loadKey(t, "2048")
	_, k4 := loadKey(t, "4096")
	pk2, _ := EncodePublicKey(&k2.Key.PublicKey)
	pk4, _ := EncodePublicKey(&k4.Key.PublicKey)
	inner, err := Sign(SignOptions{Algorithm: AlgorithmSHA256RSA2048, Key: k2.Key,
		Chains: []ChainPartition{{Name: "deeper", Location: 2, PublicKey: pk4}}})
	if err != nil {
		t.Fatal(err)
	}
	top, err := Sign(SignOptions{Algorithm: AlgorithmSHA256RSA4096, Key: k4.Key, Chains: []ChainPartition{{Name: "inner", Location: 1, PublicKey: pk2}}})
	if err != nil {
		t.Fatal(err)
	}
	tv, _ := Parse(top)
	mem := func(b []byte) *memFile { return &memFile{b: b} }
	rep, err := Verify(context.Background(), &Image{VBMeta: tv}, nil, VerifyOptions{PublicKey: pk4,
		Images: MapImages(map[string]image.Image{"inner": mem(inner).image()})})
	if err != nil {
		t.Fatal(err)
	}
	f := rep.Failed()
	if len(f) != 1 || f[0].Partition != "deeper" || !strings.Contains(f[0].Message, "may not chain") {
		t.Fatalf("nested chain: %+v", rep.Checks)
	}
	// the chained image signed by another key than the descriptor names is a finding
	wrong, _ := Sign(SignOptions{Algorithm: AlgorithmSHA256RSA4096, Key: k4.Key})
	rep, _ = Verify(context.Background(), &Image{VBMeta: tv}, nil, VerifyOptions{Images: MapImages(map[string]image.Image{"inner": mem(wrong).image()})})
	if f := rep.Failed(); len(f) != 1 || f[0].What != "public_key" || f[0].Partition != "inner" {
		t.Fatalf("wrong chained key: %+v", rep.Checks)
	}
}
