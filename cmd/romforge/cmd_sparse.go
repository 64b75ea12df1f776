package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
)

func init() {
	register(&cli.Command{
		Name:  "sparse",
		Usage: "convert and split Android sparse images",
		Subcommands: []*cli.Command{
			{
				Name:      "to-raw",
				Usage:     "expand a sparse image to a raw image (like simg2img)",
				ArgsUsage: "IN OUT",
				Action:    runSparseToRaw,
			},
			{
				Name:      "to-sparse",
				Usage:     "encode a raw image as a sparse image (like img2simg)",
				ArgsUsage: "IN OUT",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "block-size", Value: "4096", Usage: "sparse block size in bytes (multiple of 4)"},
					&cli.BoolFlag{Name: "dont-care", Usage: "write zero blocks as DONT_CARE holes instead of FILL 0 (smaller; the device keeps old contents there)"},
					&cli.BoolFlag{Name: "crc", Usage: "append a CRC32 chunk"},
				},
				Action: runSparseToSparse,
			},
			{
				Name:      "split",
				Usage:     "split an image into sparse pieces of at most --max bytes (as fastboot does for max-download-size)",
				ArgsUsage: "IN",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "max", Required: true, Usage: "largest piece in bytes: 268435456, 0x10000000, 256M, 1G"},
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "directory for the pieces (IN's name + .0, .1, …)"},
				},
				Action: runSparseSplit,
			},
		},
	})
}

// sparseParseSize is parseSize for sizes that must be positive.
func sparseParseSize(s string) (int64, error) {
	v, err := parseSize(s)
	if err != nil || v == 0 {
		return 0, usagef("invalid size %q (use e.g. 268435456, 0x10000000, 256M or 1G)", s)
	}
	return v, nil
}

func sparseOpenFile(path string) (*sparse.Image, *image.File, error) {
	f, err := image.OpenFile(path)
	if err != nil {
		return nil, nil, err
	}
	m, err := sparse.NewReader(f, f.Size())
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, f, nil
}

func runSparseToRaw(c *cli.Context) error {
	if err := needArgs(c, 2, 2, "IN OUT"); err != nil {
		return err
	}
	e := envOf(c)
	in, out := c.Args().Get(0), c.Args().Get(1)
	m, f, err := sparseOpenFile(in)
	if err != nil {
		return err
	}
	defer f.Close()
	tmp, err := safeio.Create(out)
	if err != nil {
		return err
	}
	defer tmp.Abort()
	if err := m.Expand(e.ctx, tmp.File, true, e.reporter()); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if err := tmp.Truncate(m.Size()); err != nil {
		return err
	}
	if err := tmp.Commit(); err != nil {
		return err
	}
	info := m.Info()
	if e.json {
		return e.printJSON(map[string]any{"command": "sparse to-raw", "input": in, "output": out,
			"sparse_size": info.FileSize, "raw_size": m.Size(), "block_size": info.BlockSize, "chunks": info.TotalChunks})
	}
	e.logf("%s: %d chunks → %s (%d bytes)", in, info.TotalChunks, out, m.Size())
	return nil
}

func runSparseToSparse(c *cli.Context) error {
	if err := needArgs(c, 2, 2, "IN OUT"); err != nil {
		return err
	}
	e := envOf(c)
	in, out := c.Args().Get(0), c.Args().Get(1)
	bs, err := sparseParseSize(c.String("block-size"))
	if err != nil {
		return err
	}
	if bs > 1<<26 {
		return usagef("block size %d is too large", bs)
	}
	src, closer, err := sparse.Open(in)
	if err != nil {
		return err
	}
	defer closer.Close()
	tmp, err := safeio.Create(out)
	if err != nil {
		return err
	}
	defer tmp.Abort()
	opt := sparse.WriteOptions{BlockSize: int(bs), DontCare: c.Bool("dont-care"), CRC: c.Bool("crc"), Progress: e.reporter()}
	if err := sparse.WriteFile(e.ctx, tmp.File, src, opt); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	st, err := tmp.Stat()
	if err != nil {
		return err
	}
	if err := tmp.Commit(); err != nil {
		return err
	}
	if e.json {
		return e.printJSON(map[string]any{"command": "sparse to-sparse", "input": in, "output": out,
			"raw_size": src.Size(), "sparse_size": st.Size(), "block_size": bs})
	}
	e.logf("%s (%d bytes) → %s (%d bytes sparse)", in, src.Size(), out, st.Size())
	return nil
}

func runSparseSplit(c *cli.Context) error {
	if err := needArgs(c, 1, 1, "IN"); err != nil {
		return err
	}
	e := envOf(c)
	in, dir := c.Args().Get(0), c.String("output")
	max, err := sparseParseSize(c.String("max"))
	if err != nil {
		return err
	}
	src, closer, err := sparse.Open(in)
	if err != nil {
		return err
	}
	defer closer.Close()
	pieces, err := sparse.SplitContext(e.ctx, src, max, e.reporter())
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	type piece struct {
		Path string `json:"path"`
		Size int64  `json:"size"`
	}
	var written []piece
	var total int64
	for i := range pieces {
		total += pieces[i].Size()
	}
	task := e.reporter().Task("sparse split", total)
	for i := range pieces {
		path := filepath.Join(dir, fmt.Sprintf("%s.%d", filepath.Base(in), i))
		if err := sparseWritePiece(&pieces[i], path); err != nil {
			task.Done(err)
			return err
		}
		task.Add(pieces[i].Size())
		written = append(written, piece{path, pieces[i].Size()})
	}
	task.Done(nil)
	if e.json {
		return e.printJSON(map[string]any{"command": "sparse split", "input": in, "max": max, "pieces": written})
	}
	for _, p := range written {
		fmt.Fprintf(e.stdout, "%s\t%d\n", p.Path, p.Size)
	}
	return nil
}

func sparseWritePiece(p *sparse.Piece, path string) error {
	tmp, err := safeio.Create(path)
	if err != nil {
		return err
	}
	defer tmp.Abort()
	if _, err := p.WriteTo(tmp.File); err != nil {
		return failure.Kinded(failure.ErrIO, fmt.Errorf("writing %s: %w", path, err))
	}
	return tmp.Commit()
}
