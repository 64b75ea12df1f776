package avb

import (
	"bytes"
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
)

func salt(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func addFooter(t *testing.T, path string, tree bool, opt FooterOptions) *FooterResult {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	var res *FooterResult
	if tree {
		res, err = AddHashtreeFooter(context.Background(), f, st.Size(), opt)
	} else {
		res, err = AddHashFooter(context.Background(), f, st.Size(), opt)
	}
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// The footers make-fixtures.sh added with avbtool come out byte-identical from our code.
func TestFootersMatchAvbtoolFixtures(t *testing.T) {
	dir := fx(t)
	tmp := t.TempDir()
	boot := filepath.Join(tmp, "boot.img")
	copyTo(t, filepath.Join(dir, "boot", "boot-v2.img"), boot)
	addFooter(t, boot, false, FooterOptions{PartitionName: "boot", PartitionSize: 16 << 20,
		Salt: salt(t, "8c17a2b317ec29a78b20b8654a4a778205c27939bb8ae7a4225a274b6a9d7d6b")})
	if !bytes.Equal(readFile(t, boot), readFile(t, filepath.Join(dir, "avb", "boot.img"))) {
		t.Fatal("hash footer differs from avbtool's avb/boot.img")
	}
	sys := filepath.Join(tmp, "system.img")
	copyTo(t, filepath.Join(dir, "ext4", "system.img"), sys)
	res := addFooter(t, sys, true, FooterOptions{PartitionName: "system", PartitionSize: 20 << 20,
		Salt: salt(t, "7323f798356a105fd7f7740d95f38c55dbfd21ec885a496aa3f6e9b59aa8fb65")})
	if !bytes.Equal(readFile(t, sys), readFile(t, filepath.Join(dir, "avb", "system.img"))) {
		t.Fatal("hashtree footer differs from avbtool's avb/system.img")
	}
	if hex.EncodeToString(res.Hashtree.RootDigest) != "ee12ef66458390e223ce07c8190a62fa445932a7e6dd29f143f5f7868010c45c" {
		t.Fatalf("root digest %x", res.Hashtree.RootDigest)
	}
	// replacing the footer (salt taken from the old one) is idempotent
	res = addFooter(t, sys, true, FooterOptions{PartitionName: "system", PartitionSize: 20 << 20})
	if !res.ReplacedOld || !bytes.Equal(readFile(t, sys), readFile(t, filepath.Join(dir, "avb", "system.img"))) {
		t.Fatal("re-adding the hashtree footer changed the image")
	}
	res = addFooter(t, boot, false, FooterOptions{PartitionName: "boot", PartitionSize: 16 << 20})
	if !res.ReplacedOld || !bytes.Equal(readFile(t, boot), readFile(t, filepath.Join(dir, "avb", "boot.img"))) {
		t.Fatal("re-adding the hash footer changed the image")
	}
}

// For odd sizes, every hash algorithm, with and without a partition size, and signed, our footers equal
// what avbtool writes on an identical copy; avbtool verify_image accepts ours.
func TestFootersAgainstLiveAvbtool(t *testing.T) {
	validators.Tool(t, "avbtool")
	tmp := t.TempDir()
	key := keyFile(t, "2048")
	k, err := ParsePrivateKeyPEM(readFile(t, key))
	if err != nil {
		t.Fatal(err)
	}
	type tc struct {
		name     string
		size     int
		tree     bool
		hash     string
		part     int64
		signed   bool
		saltHex  string
		extraArg []string
	}
	cases := []tc{
		{"tree-sha256-odd", 3<<20 + 1234, true, "sha256", 8 << 20, false, "00112233", nil},
		{"tree-sha1-part", 1 << 20, true, "sha1", 8 << 20, false, "aabbccddeeff", nil},
		{"tree-sha512-signed", 2<<20 + 4096*3, true, "sha512", 0, true, "0102", nil},
		{"tree-one-block", 4096, true, "sha256", 0, false, "", nil},
		{"tree-small", 100, true, "sha256", 1 << 20, false, "ff", nil},
		{"hash-odd-signed", 300000, false, "sha256", 1 << 20, true, "deadbeef", nil},
		{"hash-sha1", 8192, false, "sha1", 1 << 20, false, "", nil},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			data := pattern(c.size, byte(i))
			// avbtool verify_image finds a descriptor's partition as DIR/NAME.img
			opt := FooterOptions{PartitionName: "p" + strconv.Itoa(i), PartitionSize: c.part, Salt: salt(t, c.saltHex), HashAlgorithm: c.hash}
			os.MkdirAll(filepath.Join(tmp, c.name, "ours"), 0o755)
			os.MkdirAll(filepath.Join(tmp, c.name, "theirs"), 0o755)
			ours := filepath.Join(tmp, c.name, "ours", opt.PartitionName+".img")
			theirs := filepath.Join(tmp, c.name, "theirs", opt.PartitionName+".img")
			os.WriteFile(ours, data, 0o644)
			os.WriteFile(theirs, data, 0o644)
			args := []string{"--image", theirs, "--partition_name", opt.PartitionName, "--hash_algorithm", c.hash, "--salt", c.saltHex}
			if c.saltHex == "" {
				opt.Salt = []byte{}
				args[len(args)-1] = "" // avbtool: empty salt string means no salt
			}
			if c.part > 0 {
				args = append(args, "--partition_size", strconv.FormatInt(c.part, 10))
			}
			if c.signed {
				opt.Algorithm, opt.Key, opt.RollbackIndex = AlgorithmSHA256RSA2048, k, 7
				args = append(args, "--algorithm", "SHA256_RSA2048", "--key", key, "--rollback_index", "7")
			}
			if c.tree {
				args = append([]string{"add_hashtree_footer", "--do_not_generate_fec"}, args...)
			} else {
				args = append([]string{"add_hash_footer"}, args...)
			}
			validators.Run(t, "avbtool", args...)
			addFooter(t, ours, c.tree, opt)
			if !bytes.Equal(readFile(t, ours), readFile(t, theirs)) {
				compareLines(t, "info_image", textOf(t, loadFile(t, ours)), avbInfo(t, theirs))
				t.Fatal("images differ though info_image agrees")
			}
			vargs := []string{"verify_image", "--image", ours}
			if c.signed {
				vargs = append(vargs, "--key", key)
			}
			out := validators.Run(t, "avbtool", vargs...)
			if !strings.Contains(out, "Successfully verified") {
				t.Fatalf("avbtool verify_image: %s", out)
			}
			compareLines(t, "info_image", textOf(t, loadFile(t, ours)), avbInfo(t, ours))
			// and we verify ours
			img := loadFile(t, ours)
			f, _ := image.OpenFile(ours)
			defer f.Close()
			rep, err := Verify(context.Background(), img, f, VerifyOptions{})
			if err != nil || !rep.OK() {
				t.Fatalf("our verify: %v %+v", err, rep)
			}
		})
	}
}

// FEC data is kept when the content is unchanged and dropped, with a note, when it changed.
func TestHashtreeFECPreservedOrDropped(t *testing.T) {
	data := pattern(64<<10, 9)
	m := &memFile{b: append([]byte(nil), data...)}
	s := []byte{1, 2, 3}
	res, err := AddHashtreeFooter(context.Background(), m, int64(len(m.b)), FooterOptions{PartitionName: "vendor", Salt: s})
	if err != nil {
		t.Fatal(err)
	}
	// Rebuild the footer as an FEC-making avbtool would have: FEC right after the tree, vbmeta after it.
	ht := *res.Hashtree
	fecOff := ht.TreeOffset + roundUp(ht.TreeSize, 4096)
	fec := pattern(5000, 77)
	ht.FECNumRoots, ht.FECOffset, ht.FECSize = 2, fecOff, uint64(len(fec))
	m.Truncate(int64(fecOff))
	m.WriteAt(fec, int64(fecOff))
	vb, err := Sign(SignOptions{Descriptors: []Descriptor{&ht}})
	if err != nil {
		t.Fatal(err)
	}
	vbOff := int64(fecOff + roundUp(uint64(len(fec)), 4096))
	if _, err := writeTail(m, vbOff, vb, 0, &Footer{VersionMajor: 1, OriginalImageSize: uint64(len(data)), VBMetaOffset: uint64(vbOff), VBMetaSize: uint64(len(vb))}); err != nil {
		t.Fatal(err)
	}
	withFEC := append([]byte(nil), m.b...)

	res, err = AddHashtreeFooter(context.Background(), m, int64(len(m.b)), FooterOptions{PartitionName: "vendor"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.FECPreserved || res.Hashtree.FECSize != uint64(len(fec)) || res.Hashtree.FECNumRoots != 2 || !bytes.Equal(m.b, withFEC) {
		t.Fatalf("unchanged content: FEC not kept: %+v notes %v", res.Hashtree, res.Notes)
	}
	m.b[4096*3] ^= 0xff // change the content
	res, err = AddHashtreeFooter(context.Background(), m, int64(len(m.b)), FooterOptions{PartitionName: "vendor"})
	if err != nil {
		t.Fatal(err)
	}
	if res.FECPreserved || res.Hashtree.FECSize != 0 || len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "FEC dropped") {
		t.Fatalf("changed content: %+v notes %v", res.Hashtree, res.Notes)
	}
	img, err := Load(m.image())
	if err != nil {
		t.Fatal(err)
	}
	if got := img.VBMeta.Descriptors[0].(*HashtreeDescriptor); got.FECOffset != 0 || int64(img.Footer.VBMetaOffset) != int64(got.TreeOffset+roundUp(got.TreeSize, 4096)) {
		t.Fatalf("after dropping FEC: %+v footer %+v", got, img.Footer)
	}
	rep, err := Verify(context.Background(), img, m.image(), VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("verify after FEC drop: %v %+v", err, rep)
	}
}

func TestFooterOptionErrors(t *testing.T) {
	ctx := context.Background()
	m := &memFile{b: pattern(1<<20, 1)}
	for name, fn := range map[string]func() error{
		"hash partition too small": func() error {
			_, err := AddHashFooter(ctx, m, int64(len(m.b)), FooterOptions{PartitionName: "b", PartitionSize: 1 << 20})
			return err
		},
		"hash partition unaligned": func() error {
			_, err := AddHashFooter(ctx, m, int64(len(m.b)), FooterOptions{PartitionName: "b", PartitionSize: 4<<20 + 1})
			return err
		},
		"bad hash": func() error {
			_, err := AddHashtreeFooter(ctx, m, int64(len(m.b)), FooterOptions{PartitionName: "b", HashAlgorithm: "md5"})
			return err
		},
		"tree partition too small": func() error {
			_, err := AddHashtreeFooter(ctx, m, int64(len(m.b)), FooterOptions{PartitionName: "b", PartitionSize: 1 << 20})
			return err
		},
		"key size mismatch": func() error {
			_, err := AddHashtreeFooter(ctx, m, int64(len(m.b)), FooterOptions{PartitionName: "b", Algorithm: AlgorithmSHA256RSA4096})
			return err
		},
	} {
		before := append([]byte(nil), m.b...)
		if err := fn(); !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
		if !bytes.Equal(before, m.b) {
			t.Errorf("%s: failed call changed the image", name)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := AddHashtreeFooter(cctx, m, int64(len(m.b)), FooterOptions{PartitionName: "b"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}

func TestMaxHashtreeSize(t *testing.T) {
	// 16 MiB with sha256: 4096 blocks * 32 B = 128 KiB level 0, + one 4 KiB block = 135168 (fixture).
	if n := MaxHashtreeSize(16<<20, 4096, crypto.SHA256); n != 135168 {
		t.Fatalf("tree size %d", n)
	}
}
