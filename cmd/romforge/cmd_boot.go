package main

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/bootimg"
	"github.com/romforge/romforge/image/cpio"
	"github.com/romforge/romforge/image/dtbo"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
	"github.com/romforge/romforge/progress"
	"github.com/romforge/romforge/rom"
)

func init() {
	register(&cli.Command{
		Name:  "boot",
		Usage: "unpack and repack boot, recovery and vendor_boot images (header v0–v4)",
		Subcommands: []*cli.Command{
			{
				Name:      "unpack",
				Usage:     "write each part of a boot image and header.json (every header field) to a directory",
				ArgsUsage: "IMG",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "directory for the parts (required)"},
				},
				Action: runBootUnpack,
			},
			{
				Name:      "repack",
				Usage:     "rebuild a boot image from an unpacked directory (byte-identical when nothing was edited)",
				ArgsUsage: "DIR",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "image file to write (required)"},
				},
				Action: runBootRepack,
			},
		},
	})
	addDescriber(describer{
		kind: "boot",
		match: func(h []byte, _ string) bool {
			k := rom.Classify(h)
			return k == rom.KindBoot || k == rom.KindVendorBoot
		},
		describe: func(path string) (any, error) {
			f, err := image.OpenFile(path)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			im, err := bootimg.Parse(f, f.Size())
			if err != nil {
				return nil, err
			}
			return im.Info(), nil
		},
	})
	addDescriber(describer{
		kind:  "dtbo",
		match: func(h []byte, _ string) bool { return dtbo.IsDTBO(h) },
		describe: func(path string) (any, error) {
			f, err := image.OpenFile(path)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			im, err := dtbo.Parse(f, f.Size())
			if err != nil {
				return nil, err
			}
			return im.Info(), nil
		},
	})
}

func runBootUnpack(c *cli.Context) error {
	if err := needArgs(c, 1, 1, "IMG"); err != nil {
		return err
	}
	e := envOf(c)
	in, dir := c.Args().First(), c.String("output")
	if dir == "" {
		return usagef("boot unpack needs -o DIR")
	}
	f, err := image.OpenFile(in)
	if err != nil {
		return err
	}
	defer f.Close()
	im, err := bootimg.Parse(f, f.Size())
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	task := e.reporter().Task("boot unpack", f.Size())
	files, err := im.Unpack(e.ctx, dir)
	task.Add(f.Size())
	task.Done(err)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	h := im.Header
	ramdisk := bootRamdiskKind(im)
	if e.json {
		return e.printJSON(map[string]any{
			"command": "boot unpack", "input": in, "output": dir, "format": h.Kind.String(),
			"header_version": h.HeaderVersion, "files": files, "ramdisk_compression": ramdisk,
			"tail_size": im.Info().TailSize, "avb_footer": im.HasAVBFooter(), "notes": im.Notes,
		})
	}
	e.logf("%s: %s header v%d → %s", in, h.Kind, h.HeaderVersion, dir)
	for _, n := range files {
		fmt.Fprintln(e.stdout, filepath.Join(dir, n))
	}
	if ramdisk != "" {
		e.logf("ramdisk compression: %s", ramdisk)
	}
	if im.HasAVBFooter() {
		e.logf("the image ends in an AVB footer (kept in %s); edit a part and repack drops it", bootimg.TailFile)
	}
	for _, n := range im.Notes {
		e.logf("note: %s", n)
	}
	return nil
}

// bootRamdiskKind names the compression of the (first) ramdisk, or "" when there is none or it is not
// a recognised cpio ramdisk.
func bootRamdiskKind(im *bootimg.Image) string {
	r := im.Open(bootimg.SecRamdisk)
	if r == nil {
		r = im.Open(bootimg.SecVendorRamdisk)
	}
	if r == nil {
		return ""
	}
	head := make([]byte, 16)
	n, _ := r.ReadAt(head, 0)
	c, err := cpio.Detect(head[:n])
	if err != nil {
		return "unknown"
	}
	return string(c)
}

func runBootRepack(c *cli.Context) error {
	if err := needArgs(c, 1, 1, "DIR"); err != nil {
		return err
	}
	e := envOf(c)
	dir, out := c.Args().First(), c.String("output")
	if out == "" {
		return usagef("boot repack needs -o IMG")
	}
	o, err := bootimg.Repack(e.ctx, dir)
	if err != nil {
		return err
	}
	defer o.Close()
	tmp, err := safeio.Create(out)
	if err != nil {
		return failure.Kinded(failure.ErrIO, err)
	}
	defer tmp.Abort()
	task := e.reporter().Task("boot repack", o.Size())
	_, err = o.WriteTo(progress.Writer(tmp, task))
	task.Done(err)
	if err != nil {
		return failure.Kinded(failure.ErrIO, fmt.Errorf("writing %s: %w", out, err))
	}
	if err := e.ctx.Err(); err != nil {
		return err
	}
	if err := tmp.Commit(); err != nil {
		return failure.Kinded(failure.ErrIO, err)
	}
	h := o.Header
	if e.json {
		return e.printJSON(map[string]any{
			"command": "boot repack", "input": dir, "output": out, "format": h.Kind.String(),
			"header_version": h.HeaderVersion, "size": o.Size(), "notes": o.Notes,
		})
	}
	for _, n := range o.Notes {
		e.logf("note: %s", n)
	}
	e.logf("%s → %s (%s header v%d, %d bytes)", dir, out, h.Kind, h.HeaderVersion, o.Size())
	return nil
}
