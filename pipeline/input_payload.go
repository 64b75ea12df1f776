package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/image/payload"
	"github.com/romforge/romforge/rom"
)

func init() { registerOpener(openPayload) }

// payloadInput is an A/B OTA zip (payload.bin read in place) or a bare payload.bin.
type payloadInput struct {
	p      *payload.Payload
	closer io.Closer
	meta   map[string]string
	parts  []string
}

func openPayload(path string, _ *devices.Device) (Input, bool, error) {
	in, err := rom.Detect(path)
	if err != nil || (in.Kind != rom.KindABPayloadZip && in.Kind != rom.KindPayloadBin) {
		return nil, false, nil
	}
	p, c, err := payload.Open(path)
	if err != nil {
		return nil, true, err
	}
	pi := &payloadInput{p: p, closer: c, meta: map[string]string{}}
	if in.OTAMetadata != nil {
		pi.meta = in.OTAMetadata.Values
	}
	for _, part := range p.Partitions() {
		if part.Delta {
			c.Close()
			return nil, true, fmt.Errorf("build: %s is an incremental OTA (%s has delta operations): build from a full OTA", path, part.Name)
		}
		pi.parts = append(pi.parts, part.Name)
	}
	return pi, true, nil
}

func (p *payloadInput) Kind() string                { return "ab-payload" }
func (p *payloadInput) Metadata() map[string]string { return p.meta }
func (p *payloadInput) Partitions() []string        { return p.parts }
func (p *payloadInput) UpdateBinary() []byte        { return nil }
func (p *payloadInput) AntiVersion() int            { return -1 }
func (p *payloadInput) Close() error                { return p.closer.Close() }

func (p *payloadInput) Extract(ctx context.Context, name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = p.p.Extract(ctx, name, f, payload.ExtractOptions{})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
