package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/image/blockota"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/internal/failure"
)

// describer recognises one kind of input and describes it as a JSON-able value.
type describer struct {
	kind string
	// match looks at the first 8 KiB of a file (nil for directories) and its path.
	match    func(head []byte, path string) bool
	describe func(path string) (any, error)
}

// describers are tried in order; the first match describes the input. Format packages add theirs in
// inspect_*.go files.
var describers []describer

func addDescriber(d describer) { describers = append(describers, d) }

func init() {
	addDescriber(describer{
		kind:  "sparse",
		match: func(h []byte, _ string) bool { return sparse.IsSparse(bytes.NewReader(h)) },
		describe: func(path string) (any, error) {
			f, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			st, _ := f.Stat()
			m, err := sparse.NewReader(f, st.Size())
			if err != nil {
				return nil, err
			}
			return m.Info(), nil
		},
	})
	addDescriber(describer{
		kind:  "transfer-list",
		match: func(_ []byte, path string) bool { return strings.HasSuffix(path, ".transfer.list") },
		describe: func(path string) (any, error) {
			f, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			tl, err := blockota.Parse(f)
			if err != nil {
				return nil, err
			}
			return tl.Info(), nil
		},
	})
	register(&cli.Command{
		Name:      "inspect",
		Usage:     "say what a file or ROM is and print its key header fields",
		ArgsUsage: "FILE|DIR",
		Action:    runInspect,
	})
}

func runInspect(c *cli.Context) error {
	if err := needArgs(c, 1, 1, "one FILE or DIR"); err != nil {
		return err
	}
	e := envOf(c)
	path := c.Args().First()
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	var head []byte
	if !st.IsDir() {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		head = make([]byte, 8192)
		n, _ := f.ReadAt(head, 0)
		head = head[:n]
		f.Close()
	}
	for _, d := range describers {
		if !d.match(head, path) {
			continue
		}
		info, err := d.describe(path)
		if err != nil {
			return fmt.Errorf("inspect %s (%s): %w", path, d.kind, err)
		}
		out := map[string]any{"format": d.kind, "file": path, "size": st.Size(), "details": info}
		if e.json {
			return e.printJSON(out)
		}
		return printHuman(e, d.kind, path, info)
	}
	return failure.Kinded(failure.ErrInvalid, fmt.Errorf("inspect: %s is not a format romforge recognises (sparse, payload, OTA zip, Xiaomi fastboot ROM, super, boot, vbmeta, dtbo, ext4, EROFS)", path))
}

// printHuman prints the description as indented key: value lines (the JSON form has the same fields).
func printHuman(e *env, kind, path string, info any) error {
	fmt.Fprintf(e.stdout, "%s: %s\n", path, e.bold(kind))
	var buf bytes.Buffer
	saved := e.stdout
	e.stdout = &buf
	if err := e.printJSON(info); err != nil {
		e.stdout = saved
		return err
	}
	e.stdout = saved
	for _, ln := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		t := strings.TrimSpace(ln)
		if t == "{" || t == "}" || t == "}," || t == "]" || t == "]," {
			continue
		}
		t = strings.TrimSuffix(t, ",")
		t = strings.TrimSuffix(strings.TrimSuffix(t, " {"), " [")
		t = strings.Replace(t, `": `, ": ", 1)
		t = strings.TrimPrefix(t, `"`)
		indent := len(ln) - len(strings.TrimLeft(ln, " "))
		fmt.Fprintf(e.stdout, "%s%s\n", strings.Repeat(" ", max(0, indent-2)), t)
	}
	return nil
}
