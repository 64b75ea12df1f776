package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/image/blockota"
	"github.com/romforge/romforge/image/lp"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/rom"
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
		match: func(h []byte, _ string) bool { return rom.Classify(h) == rom.KindSparse },
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
			// A sparse super (as flashed from a bundle or a Xiaomi ROM): its layout matters more than its chunks.
			if s, err := lp.NewReader(m, m.Size()); err == nil {
				return map[string]any{"sparse": m.Info(), "super": s.Info()}, nil
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

// printHuman prints the description as an indented outline in field order (the JSON form has the same
// fields): "key: value" lines, lists of scalars on one line, lists of objects as "-" items.
func printHuman(e *env, kind, path string, info any) error {
	fmt.Fprintf(e.stdout, "%s: %s\n", path, e.bold(kind))
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := decodeOrdered(dec)
	if err != nil {
		return err
	}
	printOutline(e.stdout, v, 0)
	return nil
}

// ordered is a JSON object with its keys in document order.
type ordered struct {
	keys []string
	vals map[string]any
}

func decodeOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &ordered{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				o.keys = append(o.keys, k)
				o.vals[k] = v
			}
			_, err := dec.Token()
			return o, err
		case '[':
			var a []any
			for dec.More() {
				v, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := dec.Token()
			return a, err
		}
	}
	return tok, nil
}

func scalar(v any) (string, bool) {
	switch t := v.(type) {
	case nil:
		return "-", true
	case string:
		return t, true
	case json.Number:
		return t.String(), true
	case bool:
		return fmt.Sprint(t), true
	}
	return "", false
}

func printOutline(w io.Writer, v any, depth int) {
	ind := strings.Repeat("  ", depth)
	switch t := v.(type) {
	case *ordered:
		for _, k := range t.keys {
			val := t.vals[k]
			if s, ok := scalar(val); ok {
				fmt.Fprintf(w, "%s%s: %s\n", ind, k, s)
				continue
			}
			if a, ok := val.([]any); ok {
				if len(a) == 0 {
					fmt.Fprintf(w, "%s%s: []\n", ind, k)
					continue
				}
				all := true
				var parts []string
				for _, x := range a {
					s, ok := scalar(x)
					all = all && ok
					parts = append(parts, s)
				}
				if all {
					fmt.Fprintf(w, "%s%s: %s\n", ind, k, strings.Join(parts, ", "))
					continue
				}
			}
			fmt.Fprintf(w, "%s%s:\n", ind, k)
			printOutline(w, val, depth+1)
		}
	case []any:
		for _, x := range t {
			if s, ok := scalar(x); ok {
				fmt.Fprintf(w, "%s- %s\n", ind, s)
				continue
			}
			fmt.Fprintf(w, "%s-\n", ind)
			printOutline(w, x, depth+1)
		}
	default:
		s, _ := scalar(v)
		fmt.Fprintf(w, "%s%s\n", ind, s)
	}
}
