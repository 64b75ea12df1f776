package main

import (
	"crypto/rsa"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/image/avb"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/rom"
)

type avbKey struct{ *rsa.PrivateKey }

func init() {
	footerFlags := []cli.Flag{
		&cli.StringFlag{Name: "partition-name", Required: true, Usage: "partition name (without A/B suffix)"},
		&cli.StringFlag{Name: "salt", Usage: "salt in hex (default: the replaced footer's salt, else random)"},
		&cli.StringFlag{Name: "hash-algorithm", Value: "sha256", Usage: "sha1, sha256 or sha512"},
		&cli.StringFlag{Name: "key", Usage: "sign the footer's vbmeta with this RSA key (PEM)"},
		&cli.StringFlag{Name: "algorithm", Usage: "signing algorithm (default SHA256_RSA<key bits> with --key, else NONE)"},
		&cli.Uint64Flag{Name: "rollback-index", Usage: "rollback index of the footer's vbmeta"},
		&cli.UintFlag{Name: "rollback-index-location", Usage: "rollback index location"},
		&cli.StringSliceFlag{Name: "prop", Usage: "KEY:VALUE property (repeatable)"},
	}
	register(&cli.Command{
		Name:  "avb",
		Usage: "Android Verified Boot: footers, verification, keys",
		Subcommands: []*cli.Command{
			{
				Name:      "add-hashtree-footer",
				Usage:     "compute the dm-verity tree of a partition image and append tree, vbmeta and footer (replaces an existing footer)",
				ArgsUsage: "IMG",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "partition-size", Usage: "partition size in bytes (K/M/G suffixes); default: footer right after the vbmeta"},
					&cli.IntFlag{Name: "block-size", Value: 4096, Usage: "data and hash block size"},
				}, footerFlags...),
				Action: func(c *cli.Context) error { return runAVBAddFooter(c, true) },
			},
			{
				Name:      "add-hash-footer",
				Usage:     "hash a partition image (boot, dtbo, …) and append vbmeta and footer (replaces an existing footer)",
				ArgsUsage: "IMG",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "partition-size", Required: true, Usage: "partition size in bytes (K/M/G suffixes)"},
				}, footerFlags...),
				Action: func(c *cli.Context) error { return runAVBAddFooter(c, false) },
			},
			{
				Name:      "verify",
				Usage:     "verify a vbmeta image (or a partition with a footer): signature, key, partition hashes and hashtrees, chained partitions",
				ArgsUsage: "VBMETA",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "key", Usage: "expected key: PEM (private or public) or .avbpubkey"},
					&cli.StringFlag{Name: "images", Usage: "directory with NAME.img partition images (default: VBMETA's directory)"},
					&cli.StringSliceFlag{Name: "expected-chain-partition", Usage: "NAME:LOCATION:KEY.avbpubkey a chain descriptor must match (repeatable)"},
				},
				Action: runAVBVerify,
			},
			{
				Name:      "extract-public-key",
				Usage:     "write the .avbpubkey form of an RSA key (like avbtool extract_public_key)",
				ArgsUsage: "KEY.pem",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "output .avbpubkey file"},
				},
				Action: runAVBExtractPublicKey,
			},
		},
	})
}

// avbParseSize is parseSize with the flag named in the error.
func avbParseSize(flag, s string) (int64, error) {
	v, err := parseSize(s)
	if err != nil {
		return 0, usagef("--%s %q: not a size (use e.g. 16777216, 0x1000000, 16M)", flag, s)
	}
	return v, nil
}

func runAVBAddFooter(c *cli.Context, tree bool) error {
	if err := needArgs(c, 1, 1, "one IMG"); err != nil {
		return err
	}
	e := envOf(c)
	path := c.Args().First()
	opt := avb.FooterOptions{PartitionName: c.String("partition-name"), HashAlgorithm: c.String("hash-algorithm"),
		RollbackIndex: c.Uint64("rollback-index"), RollbackIndexLocation: uint32(c.Uint("rollback-index-location")),
		Progress: e.reporter()}
	var err error
	if s := c.String("partition-size"); s != "" {
		if opt.PartitionSize, err = avbParseSize("partition-size", s); err != nil {
			return err
		}
	}
	if c.IsSet("salt") {
		if opt.Salt, err = hex.DecodeString(c.String("salt")); err != nil {
			return usagef("--salt %q: not hex", c.String("salt"))
		}
		if opt.Salt == nil {
			opt.Salt = []byte{}
		}
	}
	if tree {
		opt.BlockSize = int64(c.Int("block-size"))
	}
	key, err := vbmetaReadKey(c.String("key"))
	if err != nil {
		return err
	}
	if opt.Algorithm, err = vbmetaAlgorithm(c.String("algorithm"), key); err != nil {
		return err
	}
	if key != nil {
		opt.Key = key.PrivateKey
	}
	for _, p := range c.StringSlice("prop") {
		k, v, ok := strings.Cut(p, ":")
		if !ok {
			return usagef("--prop %q: want KEY:VALUE", p)
		}
		opt.Properties = append(opt.Properties, avb.Property{Key: k, Value: []byte(v)})
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	var res *avb.FooterResult
	if tree {
		res, err = avb.AddHashtreeFooter(e.ctx, f, st.Size(), opt)
	} else {
		res, err = avb.AddHashFooter(e.ctx, f, st.Size(), opt)
	}
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	out := map[string]any{
		"image": path, "partition_name": opt.PartitionName, "image_size": res.PartitionSize,
		"original_image_size": res.Footer.OriginalImageSize, "vbmeta_offset": res.Footer.VBMetaOffset,
		"vbmeta_size": res.Footer.VBMetaSize, "algorithm": opt.Algorithm.String(), "replaced_footer": res.ReplacedOld,
		"notes": append([]string{}, res.Notes...),
	}
	var what, digest string
	if res.Hashtree != nil {
		d := res.Hashtree
		what, digest = "hashtree", hex.EncodeToString(d.RootDigest)
		out["root_digest"], out["salt"], out["hash_algorithm"] = digest, hex.EncodeToString(d.Salt), d.HashAlgorithm
		out["tree_offset"], out["tree_size"], out["fec_preserved"] = d.TreeOffset, d.TreeSize, res.FECPreserved
	} else {
		d := res.Hash
		what, digest = "hash", hex.EncodeToString(d.Digest)
		out["digest"], out["salt"], out["hash_algorithm"] = digest, hex.EncodeToString(d.Salt), d.HashAlgorithm
	}
	if e.json {
		return e.printJSON(out)
	}
	fmt.Fprintf(e.stdout, "%s: %s footer for %s, %s %s, %d bytes\n", path, what, opt.PartitionName, out["hash_algorithm"], digest, res.PartitionSize)
	for _, n := range res.Notes {
		e.logf("note: %s", n)
	}
	return nil
}

func avbReadExpectedKey(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pk, err := avb.PublicKeyFromFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pk, nil
}

func runAVBVerify(c *cli.Context) error {
	if err := needArgs(c, 1, 1, "one VBMETA image"); err != nil {
		return err
	}
	e := envOf(c)
	path := c.Args().First()
	key, err := avbReadExpectedKey(c.String("key"))
	if err != nil {
		return err
	}
	chains, err := vbmetaChains(c.StringSlice("expected-chain-partition"))
	if err != nil {
		return err
	}
	img, f, err := avb.ReadImageFile(path)
	if err != nil {
		return err
	}
	defer f.Close()
	dir := c.String("images")
	if dir == "" {
		dir = filepath.Dir(path)
	}
	opt := avb.VerifyOptions{PublicKey: key, Images: avb.DirImages(dir, filepath.Ext(path)), Progress: e.reporter()}
	if len(chains) > 0 {
		opt.ExpectedChains = map[string]avb.ChainPartition{}
		for _, ch := range chains {
			opt.ExpectedChains[ch.Name] = ch
		}
	}
	rep, err := avb.Verify(e.ctx, img, f, opt)
	if err != nil {
		return err
	}
	failed := rep.Failed()
	if e.json {
		if err := e.printJSON(map[string]any{"image": path, "ok": len(failed) == 0, "checks": rep.Checks}); err != nil {
			return err
		}
	} else {
		for _, ch := range rep.Checks {
			state := "ok"
			switch {
			case ch.Skipped:
				state = "skipped"
			case !ch.OK:
				state = "FAILED"
			}
			name := ch.Partition
			if name == "" {
				name = "vbmeta"
			}
			fmt.Fprintf(e.stdout, "%-8s %-16s %-16s %s\n", state, name, ch.What, ch.Message)
		}
	}
	if len(failed) > 0 {
		return failure.Kinded(failure.ErrFindings, fmt.Errorf("avb verify: %d of %d checks failed for %s", len(failed), len(rep.Checks), path))
	}
	return nil
}

func runAVBExtractPublicKey(c *cli.Context) error {
	if err := needArgs(c, 1, 1, "one KEY.pem"); err != nil {
		return err
	}
	e := envOf(c)
	b, err := os.ReadFile(c.Args().First())
	if err != nil {
		return err
	}
	pk, err := avb.ExtractPublicKey(b)
	if err != nil {
		return fmt.Errorf("%s: %w", c.Args().First(), err)
	}
	out := c.String("output")
	if err := vbmetaWriteAtomic(out, func(f *os.File) error { _, err := f.Write(pk); return err }); err != nil {
		return err
	}
	v, _ := avb.ParsePublicKey(pk)
	if e.json {
		return e.printJSON(map[string]any{"output": out, "key_bits": len(pk)*4 - 32, "modulus_bits": v.N.BitLen(), "size": len(pk)})
	}
	fmt.Fprintf(e.stdout, "%s: %d-bit AVB public key, %d bytes\n", out, v.N.BitLen(), len(pk))
	return nil
}

// The AVB describers for 'romforge inspect' are registered here, in the alphabetically first command
// file, so that a partition image with an AVB footer is described as such before filesystem describers
// see it; the content's own description (ext4, EROFS, …) is nested under "content". Boot and
// vendor_boot images are left to the boot describer.
func init() {
	addDescriber(describer{
		kind:     "vbmeta",
		match:    func(h []byte, _ string) bool { return rom.Classify(h) == rom.KindVbmeta },
		describe: func(path string) (any, error) { return describeAVB(path, false) },
	})
	addDescriber(describer{
		kind:     "avb-footer",
		match:    avbFooterMatch,
		describe: func(path string) (any, error) { return describeAVB(path, true) },
	})
}

func avbFooterMatch(h []byte, path string) bool {
	if k := rom.Classify(h); k == rom.KindBoot || k == rom.KindVendorBoot {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() < avb.FooterSize {
		return false
	}
	tail := make([]byte, 4)
	_, err = f.ReadAt(tail, st.Size()-avb.FooterSize)
	return err == nil && string(tail) == "AVBf"
}

// avbDescription is the inspect output: the AVB fields, plus what the partition content is.
type avbDescription struct {
	*avb.Info
	Content *avbContent `json:"content,omitempty"`
}

type avbContent struct {
	Format  string `json:"format"`
	Details any    `json:"details,omitempty"`
	Error   string `json:"error,omitempty"`
}

func describeAVB(path string, footer bool) (any, error) {
	img, f, err := avb.ReadImageFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := avbDescription{Info: img.Info()}
	if !footer {
		return out, nil
	}
	head := make([]byte, 8192)
	n, _ := f.ReadAt(head, 0)
	for _, d := range describers {
		if d.kind == "vbmeta" || d.kind == "avb-footer" || !d.match(head[:n], path) {
			continue
		}
		out.Content = &avbContent{Format: d.kind}
		if det, err := d.describe(path); err != nil {
			out.Content.Error = err.Error()
		} else {
			out.Content.Details = det
		}
		break
	}
	return out, nil
}
