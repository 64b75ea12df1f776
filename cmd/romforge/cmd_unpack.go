package main

import (
	"archive/zip"
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/image/payload"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
	"github.com/romforge/romforge/rom"
)

func init() {
	register(&cli.Command{
		Name:      "unpack",
		Usage:     "unpack a ROM (payload.bin, A/B/block/file OTA zip, Xiaomi fastboot ROM, super, sparse) into raw images",
		ArgsUsage: "INPUT",
		Description: "Writes OUTPUT/<partition>.img (raw) and OUTPUT/unpack.json (source format, ROM metadata, and per\n" +
			"partition its size, SHA-256 and detected filesystem). Every hash the container carries is verified; an\n" +
			"image appears under its final name only once it verified.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "directory for the images and unpack.json"},
			&cli.StringSliceFlag{Name: "partitions", Usage: "partitions to extract (repeatable, or a comma list; default: all)"},
			&cli.StringFlag{Name: "old", Usage: "directory of the old images <partition>.img, for delta OTAs"},
			&cli.IntFlag{Name: "workers", Usage: "operations decoded in parallel (default: number of CPUs)"},
			maxImageSizeFlag,
		},
		Action: runUnpack,
	})
}

// unpackInput is what detection learned about INPUT.
type unpackInput struct {
	path string
	head []byte      // first bytes of a file
	zip  *zip.Reader // when INPUT is a zip
	dir  bool        // INPUT is a directory (an extracted Xiaomi fastboot ROM, a folder of images)
}

// unpackOptions are the flags every unpacker understands.
type unpackOptions struct {
	out        string
	partitions []string
	old        string
	workers    int
}

// unpackResult is unpack.json.
type unpackResult struct {
	SourceFormat string            `json:"source_format"`
	File         string            `json:"file"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	Partitions   []unpackedImage   `json:"partitions"`
	Details      any               `json:"details,omitempty"`
}

type unpackedImage struct {
	Name     string `json:"name"`
	File     string `json:"file"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	FSType   string `json:"fs_type"`
	Verified bool   `json:"verified"`
}

// unpacker handles one kind of input. Kinds are tried in order; the first whose match accepts INPUT unpacks
// it. Other containers (block OTA zips, super, sparse, fastboot ROMs) add their entries here.
type unpacker struct {
	kind   string
	match  func(in *unpackInput) bool
	unpack func(e *env, in *unpackInput, opt unpackOptions) (*unpackResult, error)
}

var unpackers = []unpacker{
	{kind: "payload", match: func(in *unpackInput) bool {
		return !in.dir && in.zip == nil && rom.Classify(in.head) == rom.KindPayloadBin
	}, unpack: unpackPayload},
	{kind: "ab-ota-zip", match: func(in *unpackInput) bool { return in.zip != nil && zipHas(in.zip, "payload.bin") }, unpack: unpackPayload},
}

func zipHas(z *zip.Reader, name string) bool {
	for _, f := range z.File {
		if f.Name == name {
			return true
		}
	}
	return false
}

func runUnpack(c *cli.Context) error {
	if err := needArgs(c, 1, 1, "INPUT"); err != nil {
		return err
	}
	e := envOf(c)
	opt := unpackOptions{out: c.String("output"), old: c.String("old"), workers: c.Int("workers")}
	if opt.workers < 0 || opt.workers > 1024 {
		return usagef("--workers must be between 1 and 1024")
	}
	ctx, err := sizeLimitContext(e.ctx, c, nil)
	if err != nil {
		return err
	}
	e.ctx = ctx
	opt.partitions = nameList(c, "partitions")
	in, closer, err := detectUnpackInput(c.Args().Get(0))
	if err != nil {
		return err
	}
	defer closer.Close()
	for _, u := range unpackers {
		if !u.match(in) {
			continue
		}
		// Images are written into a hidden folder beside OUTPUT and moved into it (unpack.json last) only
		// when every one verified: a failed or interrupted unpack leaves nothing that looks complete.
		out, err := safeio.CreateDir(opt.out)
		if err != nil {
			return err
		}
		defer out.Abort()
		final := out.Final()
		opt.out = out.Path()
		res, err := u.unpack(e, in, opt)
		if err != nil {
			return err
		}
		res.SourceFormat, res.File = u.kind, in.path
		if res.Metadata == nil && in.zip != nil {
			res.Metadata = readOTAMetadata(in.zip)
		}
		for i := range res.Partitions {
			p := &res.Partitions[i]
			p.FSType = detectFSType(p.File)
			if rel, err := filepath.Rel(opt.out, p.File); err == nil && filepath.IsLocal(rel) {
				p.File = filepath.Join(final, rel) // where it will be after the move
			}
		}
		if err := writeUnpackJSON(filepath.Join(opt.out, "unpack.json"), res); err != nil {
			return err
		}
		if err := e.ctx.Err(); err != nil {
			return err
		}
		if err := out.Commit("unpack.json"); err != nil {
			return err
		}
		if e.json {
			return e.printJSON(res)
		}
		for _, p := range res.Partitions {
			fmt.Fprintf(e.stdout, "%s\t%d\t%s\t%s\n", p.File, p.Size, p.FSType, p.SHA256)
		}
		return nil
	}
	var kinds []string
	for _, u := range unpackers {
		kinds = append(kinds, u.kind)
	}
	return failure.Kinded(failure.ErrInvalid, fmt.Errorf("unpack: %s is not a container romforge can unpack (supported: %s)", in.path, strings.Join(kinds, ", ")))
}

func detectUnpackInput(path string) (*unpackInput, io.Closer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if st.IsDir() {
		f.Close()
		return &unpackInput{path: path, dir: true}, io.NopCloser(nil), nil
	}
	in := &unpackInput{path: path, head: make([]byte, 8192)}
	n, err := f.ReadAt(in.head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, nil, err
	}
	in.head = in.head[:n]
	if strings.HasPrefix(string(in.head), "PK\x03\x04") {
		z, err := zip.NewReader(f, st.Size())
		if err != nil {
			f.Close()
			return nil, nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("unpack: %s: damaged zip: %w", path, err))
		}
		in.zip = z
	}
	return in, f, nil
}

func unpackPayload(e *env, in *unpackInput, opt unpackOptions) (*unpackResult, error) {
	p, closer, err := payload.Open(in.path)
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	workers := opt.workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	got, err := p.ExtractAll(e.ctx, opt.out, opt.partitions, payload.ExtractAllOptions{
		ExtractOptions: payload.ExtractOptions{Workers: workers, Progress: e.reporter()},
		SourceDir:      opt.old,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.path, err)
	}
	res := &unpackResult{Details: p.Info()}
	for _, x := range got {
		res.Partitions = append(res.Partitions, unpackedImage{Name: x.Name, File: x.Path, Size: x.Size, SHA256: x.SHA256, Verified: x.Verified})
	}
	return res, nil
}

// readOTAMetadata reads META-INF/com/android/metadata (key=value lines), if the zip has it.
func readOTAMetadata(z *zip.Reader) map[string]string {
	for _, f := range z.File {
		if f.Name != "META-INF/com/android/metadata" || f.UncompressedSize64 > 1<<20 {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil
		}
		defer rc.Close()
		m := map[string]string{}
		sc := bufio.NewScanner(io.LimitReader(rc, 1<<20))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.TrimSpace(k) != "" {
				m[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
		return m
	}
	return nil
}

// detectFSType names the filesystem or image kind of a raw image by its magic numbers.
func detectFSType(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	b := make([]byte, 8192)
	n, _ := io.ReadFull(f, b)
	switch k := rom.Classify(b[:n]); k {
	case rom.KindExt4, rom.KindErofs, rom.KindBoot, rom.KindVbmeta, rom.KindSuper, rom.KindSparse:
		return string(k)
	case rom.KindVendorBoot:
		return "vendor_boot" // unpack.json's name since the first release
	}
	return "raw"
}

func writeUnpackJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return safeio.WriteFile(path, append(b, '\n'), 0o666)
}
