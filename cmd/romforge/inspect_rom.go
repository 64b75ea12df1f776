package main

import (
	"bytes"
	"context"
	"os"

	"github.com/romforge/romforge/image/lp"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/rom"
	"github.com/romforge/romforge/rom/xiaomi"
)

func init() {
	addDescriber(describer{
		kind:  "super",
		match: func(h []byte, _ string) bool { return rom.Classify(h) == rom.KindSuper },
		describe: func(path string) (any, error) {
			img, c, err := sparse.Open(path)
			if err != nil {
				return nil, err
			}
			defer c.Close()
			s, err := lp.NewReader(img, img.Size())
			if err != nil {
				return nil, err
			}
			return s.Info(), nil
		},
	})
	// ROM containers: zips, Xiaomi fastboot ROMs (tgz or folder).
	addDescriber(describer{
		kind: "rom",
		match: func(h []byte, path string) bool {
			if h == nil {
				return true // a directory: rom.Detect decides
			}
			return bytes.HasPrefix(h, []byte("PK\x03\x04")) || bytes.HasPrefix(h, []byte{0x1f, 0x8b}) || len(h) > 262 && string(h[257:262]) == "ustar"
		},
		describe: func(path string) (any, error) {
			in, err := rom.Detect(path)
			if err != nil {
				return nil, err
			}
			out := map[string]any{"rom_kind": in.Kind, "input": in}
			if in.Kind == rom.KindXiaomiFastbootTGZ || in.Kind == rom.KindXiaomiFastbootDir {
				r, err := xiaomi.Open(context.Background(), path)
				if err != nil {
					return nil, err
				}
				out["xiaomi"] = r.Info()
			}
			if in.Kind == rom.KindABPayloadZip && describePayload != nil {
				f, err := os.Open(path)
				if err != nil {
					return nil, err
				}
				defer f.Close()
				if info, err := describePayload(f, in.PayloadOffset, in.PayloadSize); err == nil {
					out["payload"] = info
				}
			}
			return out, nil
		},
	})
}

// describePayload is set by the payload integration (inspect_payload.go).
var describePayload func(f *os.File, off, size int64) (any, error)
