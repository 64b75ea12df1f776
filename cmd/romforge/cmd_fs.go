package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/fs/erofs"
	"github.com/romforge/romforge/fs/ext4"
	"github.com/romforge/romforge/fs/fsimage"
	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
	"github.com/romforge/romforge/rom"
)

func init() {
	addDescriber(describer{
		kind:  "ext4",
		match: func(h []byte, _ string) bool { return rom.Classify(h) == rom.KindExt4 },
		describe: func(p string) (any, error) {
			img, closer, err := sparse.Open(p)
			if err != nil {
				return nil, err
			}
			defer closer.Close()
			f, err := ext4.Open(img)
			if err != nil {
				return nil, err
			}
			return f.Info(), nil
		},
	})
	register(&cli.Command{
		Name:  "fs",
		Usage: "list, read, extract and build ext4 and EROFS filesystem images (keeping owners, modes, labels, capabilities)",
		Subcommands: []*cli.Command{
			{
				Name:      "ls",
				Usage:     "list a directory of an image: mode, uid, gid, size, SELinux label, capabilities, symlink target",
				ArgsUsage: "IMAGE [PATH]",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "recursive", Aliases: []string{"R"}, Usage: "list subdirectories too"},
				},
				Action: runFsLs,
			},
			{
				Name:      "cat",
				Usage:     "print a file of an image on stdout",
				ArgsUsage: "IMAGE PATH",
				Action:    runFsCat,
			},
			{
				Name:      "extract",
				Usage:     "extract an image into DIR, writing owners, modes, capabilities to DIR.fs_config and labels to DIR.file_contexts (no root needed)",
				ArgsUsage: "IMAGE DIR",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "mount-point", Usage: "where the image is mounted on the device, e.g. /system (default: the image's last-mounted directory)"},
				},
				Action: runFsExtract,
			},
			{
				Name:      "build",
				Usage:     "build an ext4 or EROFS image from a directory (with fs_config/file_contexts) or from another image",
				ArgsUsage: "SRC OUT.img",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "type", Value: "ext4", Usage: "ext4 or erofs"},
					&cli.StringFlag{Name: "compress", Usage: "EROFS compression: lz4 or lz4hc (default none)"},
					&cli.StringFlag{Name: "profile", Value: "modern", Usage: "ext4 features: modern, or legacy (mountable by 3.x kernels)"},
					&cli.StringFlag{Name: "size", Usage: "filesystem size (partition size): 268435456, 0x10000000, 256M, 3G"},
					&cli.BoolFlag{Name: "shrink", Usage: "smallest size that holds the tree (plus --margin)"},
					&cli.StringFlag{Name: "margin", Value: "0", Usage: "free space to leave with --shrink"},
					&cli.BoolFlag{Name: "journal", Usage: "ext4: add a journal (Android system images usually have none)"},
					&cli.BoolFlag{Name: "read-only", Usage: "ext4: mark the filesystem read-only (kernels refuse read-write mounts)"},
					&cli.StringFlag{Name: "fs-config", Usage: "AOSP fs_config file: owners, modes, capabilities per path"},
					&cli.StringFlag{Name: "file-contexts", Usage: "SELinux file_contexts file: labels by path"},
					&cli.StringFlag{Name: "mount-point", Usage: "where the image is mounted on the device, e.g. /system"},
					&cli.StringFlag{Name: "label", Usage: "volume name (default: the mount point's last element)"},
					&cli.StringFlag{Name: "timestamp", Usage: "time of every file: Unix seconds or RFC 3339 (default $SOURCE_DATE_EPOCH, else 0)"},
					&cli.StringFlag{Name: "uuid", Usage: "filesystem UUID (default all zero: deterministic)"},
					&cli.BoolFlag{Name: "sparse", Usage: "write an Android sparse image"},
				},
				Action: runFsBuild,
			},
		},
	})
}

// fsImage is an opened filesystem image.
type fsImage struct {
	*fsimage.Image
	mountPoint string // from the superblock, when known
}

// openFSImage opens a raw or sparse image holding ext4 or EROFS.
func openFSImage(p string) (*fsImage, error) {
	img, err := fsimage.Open(p)
	if errors.Is(err, fsimage.ErrNotFilesystem) {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("%s is neither ext4 nor EROFS (no magic at offset 1080 or 1024)", p))
	}
	if err != nil {
		return nil, err
	}
	return &fsImage{Image: img, mountPoint: img.MountPoint()}, nil
}

// buildEROFS writes an EROFS image with the fs build flags.
func buildEROFS(c *cli.Context, e *env, w io.WriterAt, src tree.Tree, ts time.Time, mp string) (int64, error) {
	uuid, err := parseUUID(c.String("uuid"))
	if err != nil {
		return 0, err
	}
	switch c.String("compress") {
	case "", "none", "lz4", "lz4hc":
	default:
		return 0, usagef("--compress %q: use lz4, lz4hc or none", c.String("compress"))
	}
	comp := c.String("compress")
	if comp == "none" {
		comp = ""
	}
	label := c.String("label")
	if label == "" && mp != "" {
		label = path.Base(mp)
	}
	r, err := erofs.Write(e.ctx, w, src, erofs.WriteOptions{Compression: comp, UUID: uuid, Timestamp: ts, VolumeName: label, Progress: e.reporter()})
	if err != nil {
		return 0, err
	}
	return r.Size, nil
}

// fsEntry is one line of `fs ls`.
type fsEntry struct {
	Path         string `json:"path"`
	Type         string `json:"type"`
	Mode         string `json:"mode"`
	UID          uint32 `json:"uid"`
	GID          uint32 `json:"gid"`
	Size         int64  `json:"size"`
	SELinux      string `json:"selinux,omitempty"`
	Capabilities string `json:"capabilities,omitempty"`
	Target       string `json:"target,omitempty"`
	Rdev         string `json:"rdev,omitempty"`
	Link         uint64 `json:"hard_link,omitempty"`
}

func fsTypeName(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "dir"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeCharDevice != 0:
		return "char"
	case m&fs.ModeDevice != 0:
		return "block"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "file"
}

func fsEntryOf(name string, m tree.Meta) fsEntry {
	e := fsEntry{Path: "/" + strings.TrimPrefix(name, "."), Type: fsTypeName(m.Mode), Mode: fmt.Sprintf("%04o", tree.UnixMode(m.Mode)&0o7777),
		UID: m.UID, GID: m.GID, Size: m.Size, SELinux: m.SELinux(), Target: m.Target, Link: m.Link}
	if name != "." {
		e.Path = "/" + name
	}
	if c := m.Capabilities(); c != 0 {
		e.Capabilities = fmt.Sprintf("0x%x", c)
	}
	if m.Mode&fs.ModeDevice != 0 {
		major, minor := tree.SplitDev(m.Rdev)
		e.Rdev = fmt.Sprintf("%d,%d", major, minor)
	}
	return e
}

func runFsLs(c *cli.Context) error {
	if err := needArgs(c, 1, 2, "IMAGE [PATH]"); err != nil {
		return err
	}
	e := envOf(c)
	img, err := openFSImage(c.Args().Get(0))
	if err != nil {
		return err
	}
	defer img.Close()
	p := "/"
	if c.Args().Len() > 1 {
		p = c.Args().Get(1)
	}
	name, err := tree.Clean(p)
	if err != nil {
		return usagef("%v", err)
	}
	m, err := img.Meta(name)
	if err != nil {
		return fsNotFound(err)
	}
	var list []fsEntry
	if !m.Mode.IsDir() {
		list = append(list, fsEntryOf(name, m))
	} else {
		err = fs.WalkDir(img, name, func(n string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if n == name {
				return nil
			}
			m, err := img.Meta(n)
			if err != nil {
				return err
			}
			list = append(list, fsEntryOf(n, m))
			if d.IsDir() && !c.Bool("recursive") {
				return fs.SkipDir
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if e.json {
		if list == nil {
			list = []fsEntry{}
		}
		return e.printJSON(list)
	}
	tw := e.table()
	for _, x := range list {
		name := x.Path
		if x.Target != "" {
			name += " -> " + x.Target
		}
		size := strconv.FormatInt(x.Size, 10)
		if x.Rdev != "" {
			size = x.Rdev
		}
		label, caps := x.SELinux, x.Capabilities
		if label == "" {
			label = "-"
		}
		if caps == "" {
			caps = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", fsModeString(x), x.Mode, x.UID, x.GID, size, label, caps, name)
	}
	return tw.Flush()
}

func fsModeString(x fsEntry) string {
	t := map[string]string{"dir": "d", "symlink": "l", "char": "c", "block": "b", "fifo": "p", "socket": "s"}[x.Type]
	if t == "" {
		t = "-"
	}
	mode, _ := strconv.ParseUint(x.Mode, 8, 32)
	const rwx = "rwxrwxrwx"
	b := []byte(t)
	for i := 0; i < 9; i++ {
		if mode&(1<<(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	for _, spec := range []struct {
		bit  uint64
		pos  int
		x, n byte
	}{{0o4000, 3, 's', 'S'}, {0o2000, 6, 's', 'S'}, {0o1000, 9, 't', 'T'}} {
		if mode&spec.bit != 0 {
			if b[spec.pos] == '-' {
				b[spec.pos] = spec.n
			} else {
				b[spec.pos] = spec.x
			}
		}
	}
	return string(b)
}

func fsNotFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return failure.Kinded(failure.ErrInvalid, err)
	}
	return err
}

func runFsCat(c *cli.Context) error {
	if err := needArgs(c, 2, 2, "IMAGE PATH"); err != nil {
		return err
	}
	e := envOf(c)
	img, err := openFSImage(c.Args().Get(0))
	if err != nil {
		return err
	}
	defer img.Close()
	name, err := tree.Clean(c.Args().Get(1))
	if err != nil {
		return usagef("%v", err)
	}
	m, err := img.Meta(name)
	if err != nil {
		return fsNotFound(err)
	}
	if !m.Mode.IsRegular() {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("%s is a %s, not a regular file", c.Args().Get(1), fsTypeName(m.Mode)))
	}
	f, err := img.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(e.stdout, f)
	return err
}

func runFsExtract(c *cli.Context) error {
	if err := needArgs(c, 2, 2, "IMAGE DIR"); err != nil {
		return err
	}
	e := envOf(c)
	img, err := openFSImage(c.Args().Get(0))
	if err != nil {
		return err
	}
	defer img.Close()
	dir := filepath.Clean(c.Args().Get(1))
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return failure.Kinded(failure.ErrRefused, fmt.Errorf("%s exists and is not empty; extract into a new directory", dir))
	}
	mp := c.String("mount-point")
	if mp == "" {
		mp = img.mountPoint
	}
	// The tree is extracted into a hidden folder beside DIR and renamed into place with its two side files
	// only when everything was written: a failed or interrupted extract leaves no partial tree.
	out, err := safeio.CreateDir(dir)
	if err != nil {
		return err
	}
	defer out.Abort()
	st, err := tree.Extract(e.ctx, img, out.Path())
	if err != nil {
		return err
	}
	var sides []*safeio.File
	defer func() {
		for _, f := range sides {
			f.Abort()
		}
	}()
	for _, side := range []struct {
		path  string
		write func(io.Writer) error
	}{
		{dir + ".fs_config", func(w io.Writer) error { return tree.WriteFSConfig(w, img, strings.Trim(mp, "/")) }},
		{dir + ".file_contexts", func(w io.Writer) error { return tree.WriteFileContexts(w, img, mp) }},
	} {
		f, err := safeio.Create(side.path)
		if err != nil {
			return err
		}
		sides = append(sides, f)
		if err := side.write(f); err != nil {
			return err
		}
	}
	if err := e.ctx.Err(); err != nil {
		return err
	}
	if err := out.Commit(); err != nil {
		return err
	}
	for _, f := range sides {
		if err := f.Commit(); err != nil {
			return err
		}
	}
	if e.json {
		return e.printJSON(map[string]any{"command": "fs extract", "image": c.Args().Get(0), "dir": dir,
			"fs_config": dir + ".fs_config", "file_contexts": dir + ".file_contexts", "files": st.Files, "dirs": st.Dirs,
			"symlinks": st.Symlinks, "skipped_special": st.Skipped, "bytes": st.Bytes})
	}
	e.logf("%s: %d files (%d bytes), %d directories, %d symlinks → %s (+ .fs_config, .file_contexts)", c.Args().Get(0), st.Files, st.Bytes, st.Dirs, st.Symlinks, dir)
	if st.Skipped > 0 {
		e.logf("%d device nodes, FIFOs or sockets were not created (needs root); they are listed in %s.fs_config", st.Skipped, dir)
	}
	return nil
}

func parseTimestamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(v, 0), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usagef("invalid --timestamp %q (Unix seconds or RFC 3339)", s)
	}
	return t, nil
}

func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	if s == "" {
		return u, nil
	}
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 {
		return u, usagef("invalid --uuid %q", s)
	}
	for i := 0; i < 16; i++ {
		v, err := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		if err != nil {
			return u, usagef("invalid --uuid %q", s)
		}
		u[i] = byte(v)
	}
	return u, nil
}

func runFsBuild(c *cli.Context) error {
	if err := needArgs(c, 2, 2, "SRC OUT.img"); err != nil {
		return err
	}
	e := envOf(c)
	srcPath, out := c.Args().Get(0), c.Args().Get(1)
	typ := c.String("type")
	if typ != "ext4" && typ != "erofs" {
		return usagef("--type must be ext4 or erofs, not %q", typ)
	}
	if c.Bool("shrink") == c.IsSet("size") && typ == "ext4" {
		return usagef("give exactly one of --size N or --shrink")
	}
	ts, err := parseTimestamp(c.String("timestamp"))
	if err != nil {
		return err
	}
	uuid, err := parseUUID(c.String("uuid"))
	if err != nil {
		return err
	}
	mp := c.String("mount-point")
	var src tree.Tree
	st, err := os.Stat(srcPath)
	if err != nil {
		return err
	}
	if st.IsDir() {
		d, err := tree.OpenDir(srcPath, c.String("fs-config"), c.String("file-contexts"), mp)
		if err != nil {
			return err
		}
		src = d
	} else {
		if c.IsSet("fs-config") || c.IsSet("file-contexts") {
			return usagef("--fs-config and --file-contexts apply to a directory source; %s is an image", srcPath)
		}
		img, err := openFSImage(srcPath)
		if err != nil {
			return err
		}
		defer img.Close()
		src = img
		if mp == "" {
			mp = img.mountPoint
		}
	}
	tmp, err := safeio.Create(out)
	if err != nil {
		return err
	}
	defer tmp.Abort()
	var res any
	var size int64
	switch typ {
	case "ext4":
		opt := ext4.WriteOptions{Shrink: c.Bool("shrink"), Profile: c.String("profile"), Journal: c.Bool("journal"),
			ReadOnly: c.Bool("read-only"), UUID: uuid, Timestamp: ts, MountPoint: mp, Progress: e.reporter()}
		if c.IsSet("size") {
			if opt.Size, err = sparseParseSize(c.String("size")); err != nil {
				return err
			}
		}
		if opt.Margin, err = parseMargin(c.String("margin")); err != nil {
			return err
		}
		opt.VolumeName = c.String("label")
		if opt.VolumeName == "" && mp != "" {
			opt.VolumeName = path.Base(mp)
		}
		if len(opt.VolumeName) > 16 {
			opt.VolumeName = opt.VolumeName[:16]
		}
		r, err := ext4.Write(e.ctx, tmp.File, src, opt)
		if err != nil {
			return err
		}
		res, size = r, r.Size
	case "erofs":
		if size, err = buildEROFS(c, e, tmp.File, src, ts, mp); err != nil {
			return err
		}
	}
	if err := e.ctx.Err(); err != nil {
		return err // interrupted after the writer's last check: no image rather than one Ctrl-C asked to stop
	}
	if c.Bool("sparse") {
		raw, err := image.OpenFile(tmp.Name())
		if err != nil {
			return err
		}
		defer raw.Close()
		stmp, err := safeio.Create(out)
		if err != nil {
			return err
		}
		defer stmp.Abort()
		if err := sparse.WriteFile(e.ctx, stmp.File, raw, sparse.WriteOptions{Progress: e.reporter()}); err != nil {
			return err
		}
		if err := e.ctx.Err(); err != nil {
			return err
		}
		if err := stmp.Commit(); err != nil {
			return err
		}
	} else if err := tmp.Commit(); err != nil {
		return err
	}
	if e.json {
		return e.printJSON(map[string]any{"command": "fs build", "type": typ, "source": srcPath, "output": out,
			"sparse": c.Bool("sparse"), "size": size, "result": res})
	}
	e.logf("%s → %s (%s, %d bytes%s)", srcPath, out, typ, size, map[bool]string{true: ", sparse"}[c.Bool("sparse")])
	return nil
}

func parseMargin(s string) (int64, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	return sparseParseSize(s)
}
