package main

import (
	"io"
	"os"

	"github.com/romforge/romforge/image/payload"
	"github.com/romforge/romforge/rom"
)

func init() {
	describePayload = func(f *os.File, off, size int64) (any, error) {
		p, err := payload.NewReader(io.NewSectionReader(f, off, size), size)
		if err != nil {
			return nil, err
		}
		return p.Info(), nil
	}
	// A bare payload.bin: before the ROM-container describer.
	describers = append([]describer{{
		kind:  "payload",
		match: func(h []byte, _ string) bool { return rom.Classify(h) == rom.KindPayloadBin },
		describe: func(path string) (any, error) {
			f, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return nil, err
			}
			return describePayload(f, 0, st.Size())
		},
	}}, describers...)
}
