package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/avb"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
)

func init() {
	register(&cli.Command{
		Name:  "vbmeta",
		Usage: "patch and sign Android Verified Boot vbmeta images",
		Subcommands: []*cli.Command{
			{
				Name:      "patch",
				Usage:     "set the disable-verity/verification flags exactly as 'fastboot flash vbmeta --disable-verity --disable-verification' does",
				ArgsUsage: "IN OUT",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "disable-verity", Usage: "set flag 0x1 (dm-verity off)"},
					&cli.BoolFlag{Name: "disable-verification", Usage: "set flag 0x2 (descriptor checks off)"},
				},
				Action: runVBMetaPatch,
			},
			{
				Name:      "sign",
				Usage:     "build and sign a vbmeta image (like avbtool make_vbmeta_image)",
				ArgsUsage: " ",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "key", Usage: "RSA private key (PEM, PKCS#1 or PKCS#8); required unless --algorithm NONE"},
					&cli.StringFlag{Name: "algorithm", Usage: "NONE, SHA256_RSA2048, SHA256_RSA4096, SHA512_RSA2048, SHA512_RSA4096 (default SHA256_RSA<key bits>)"},
					&cli.Uint64Flag{Name: "rollback-index", Usage: "rollback index"},
					&cli.UintFlag{Name: "rollback-index-location", Usage: "rollback index location of this vbmeta"},
					&cli.StringFlag{Name: "flags", Value: "0", Usage: "header flags (1 = hashtree disabled, 2 = verification disabled)"},
					&cli.StringSliceFlag{Name: "include-descriptors-from-image", Usage: "copy the descriptors of this image's vbmeta or footer (repeatable)"},
					&cli.StringSliceFlag{Name: "chain-partition", Usage: "NAME:LOCATION:KEY.avbpubkey (or a PEM key) (repeatable)"},
					&cli.StringSliceFlag{Name: "prop", Usage: "KEY:VALUE property (repeatable; a comma separates values, use --prop-from-file for values with commas)"},
					&cli.StringSliceFlag{Name: "prop-from-file", Usage: "KEY:PATH property whose value is the file's bytes (repeatable)"},
					&cli.StringSliceFlag{Name: "kernel-cmdline", Usage: "kernel command line descriptor (repeatable)"},
					&cli.StringFlag{Name: "release-string", Usage: "release string (default " + avb.DefaultReleaseString + ")"},
					&cli.IntFlag{Name: "padding-size", Value: 4096, Usage: "pad the image to a multiple of this many bytes (0: none)"},
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "output file"},
				},
				Action: runVBMetaSign,
			},
		},
	})
}

// vbmetaWriteAtomic writes data to path through a temporary file in the same directory.
func vbmetaWriteAtomic(path string, write func(f *os.File) error) error {
	tmp, err := safeio.Create(path)
	if err != nil {
		return err
	}
	defer tmp.Abort()
	if err := write(tmp.File); err != nil {
		return err
	}
	return tmp.Commit()
}

func runVBMetaPatch(c *cli.Context) error {
	if err := needArgs(c, 2, 2, "IN and OUT"); err != nil {
		return err
	}
	e := envOf(c)
	in, out := c.Args().Get(0), c.Args().Get(1)
	var set uint32
	if c.Bool("disable-verity") {
		set |= avb.FlagHashtreeDisabled
	}
	if c.Bool("disable-verification") {
		set |= avb.FlagVerificationDisabled
	}
	if set == 0 {
		return usagef("vbmeta patch: give --disable-verity and/or --disable-verification")
	}
	img, src, err := avb.ReadImageFile(in)
	if err != nil {
		return err
	}
	defer src.Close()
	before := img.VBMeta.Flags
	after := before | set // the fastboot client ORs the bits into the existing word
	at := img.Offset + 120
	err = vbmetaWriteAtomic(out, func(f *os.File) error {
		if _, err := io.Copy(f, image.Reader(src)); err != nil {
			return err
		}
		var w [4]byte
		binary.BigEndian.PutUint32(w[:], after)
		_, err := f.WriteAt(w[:], at)
		return err
	})
	if err != nil {
		return fmt.Errorf("vbmeta patch: writing %s: %w", out, err)
	}
	signed := img.VBMeta.Algorithm != avb.AlgorithmNone
	note := "signature not recomputed (as fastboot does): an unlocked bootloader honours the flags"
	if !signed {
		note = "image is unsigned (algorithm NONE)"
	}
	if e.json {
		return e.printJSON(map[string]any{"input": in, "output": out, "flags_offset": at,
			"flags_before": before, "flags_after": after, "algorithm": img.VBMeta.Algorithm.String(), "note": note})
	}
	fmt.Fprintf(e.stdout, "%s: flags %d -> %d (word at offset %d)\n", out, before, after, at)
	e.logf("note: %s", note)
	return nil
}

// vbmetaReadKey loads a PEM private key; empty path gives nil.
func vbmetaReadKey(path string) (*avbKey, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := avb.ParsePrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &avbKey{k}, nil
}

// vbmetaAlgorithm resolves --algorithm, defaulting to SHA256 with the key's size (NONE without key).
func vbmetaAlgorithm(name string, key *avbKey) (avb.Algorithm, error) {
	if name == "" {
		if key == nil {
			return avb.AlgorithmNone, nil
		}
		return avb.ParseAlgorithm("SHA256_RSA" + strconv.Itoa(key.N.BitLen()))
	}
	a, err := avb.ParseAlgorithm(name)
	if err != nil {
		return 0, usagef("%v", err)
	}
	if a != avb.AlgorithmNone && key == nil {
		return 0, usagef("--algorithm %s needs --key", a)
	}
	return a, nil
}

// vbmetaChains parses NAME:LOCATION:KEYFILE.
func vbmetaChains(specs []string) ([]avb.ChainPartition, error) {
	var out []avb.ChainPartition
	for _, s := range specs {
		parts := strings.SplitN(s, ":", 3)
		if len(parts) != 3 || parts[0] == "" {
			return nil, usagef("--chain-partition %q: want NAME:LOCATION:KEY.avbpubkey", s)
		}
		loc, err := strconv.ParseUint(parts[1], 0, 32)
		if err != nil || loc < 1 {
			return nil, usagef("--chain-partition %q: location must be a number ≥ 1", s)
		}
		b, err := os.ReadFile(parts[2])
		if err != nil {
			return nil, err
		}
		pk, err := avb.PublicKeyFromFile(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", parts[2], err)
		}
		out = append(out, avb.ChainPartition{Name: parts[0], Location: uint32(loc), PublicKey: pk})
	}
	return out, nil
}

func vbmetaParseUint32(flag, s string) (uint32, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 0, 32)
	if err != nil {
		return 0, usagef("--%s %q: not a number", flag, s)
	}
	return uint32(v), nil
}

func runVBMetaSign(c *cli.Context) error {
	if err := needArgs(c, 0, 0, "no arguments (use --include-descriptors-from-image, -o …)"); err != nil {
		return err
	}
	e := envOf(c)
	key, err := vbmetaReadKey(c.String("key"))
	if err != nil {
		return err
	}
	alg, err := vbmetaAlgorithm(c.String("algorithm"), key)
	if err != nil {
		return err
	}
	flags, err := vbmetaParseUint32("flags", c.String("flags"))
	if err != nil {
		return err
	}
	opt := avb.SignOptions{Algorithm: alg, RollbackIndex: c.Uint64("rollback-index"),
		RollbackIndexLocation: uint32(c.Uint("rollback-index-location")), Flags: flags,
		ReleaseString: c.String("release-string"), PaddingSize: c.Int("padding-size"), KernelCmdlines: c.StringSlice("kernel-cmdline")}
	if key != nil {
		opt.Key = key.PrivateKey
	}
	if opt.Chains, err = vbmetaChains(c.StringSlice("chain-partition")); err != nil {
		return err
	}
	for _, p := range c.StringSlice("prop") {
		k, v, ok := strings.Cut(p, ":")
		if !ok {
			return usagef("--prop %q: want KEY:VALUE", p)
		}
		opt.Properties = append(opt.Properties, avb.Property{Key: k, Value: []byte(v)})
	}
	for _, p := range c.StringSlice("prop-from-file") {
		k, path, ok := strings.Cut(p, ":")
		if !ok {
			return usagef("--prop-from-file %q: want KEY:PATH", p)
		}
		v, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		opt.Properties = append(opt.Properties, avb.Property{Key: k, Value: v})
	}
	for _, path := range c.StringSlice("include-descriptors-from-image") {
		img, f, err := avb.ReadImageFile(path)
		if err != nil {
			return err
		}
		f.Close()
		opt.Include = append(opt.Include, img.VBMeta)
	}
	vb, err := avb.Sign(opt)
	if err != nil {
		return err
	}
	out := c.String("output")
	if err := vbmetaWriteAtomic(out, func(f *os.File) error { _, err := f.Write(vb); return err }); err != nil {
		return fmt.Errorf("vbmeta sign: writing %s: %w", out, err)
	}
	v, err := avb.Parse(vb)
	if err != nil {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("vbmeta sign: re-reading our output: %w", err))
	}
	info := (&avb.Image{VBMeta: v, Size: int64(len(vb))}).Info()
	if e.json {
		return e.printJSON(map[string]any{"output": out, "size": len(vb), "vbmeta": info})
	}
	fmt.Fprintf(e.stdout, "%s: %s vbmeta, %d descriptors, rollback index %d, %d bytes\n", out, info.Algorithm, len(info.Descriptors), info.RollbackIndex, len(vb))
	return nil
}
