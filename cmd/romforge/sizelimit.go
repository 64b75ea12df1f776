package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/image"
)

// maxImageSizeFlag lets a user unpack or build an image larger than the evidence-based bound
// (image.SizeLimit) allows; without it a tiny container cannot declare a terabyte partition.
var maxImageSizeFlag = &cli.StringFlag{Name: "max-image-size",
	Usage: fmt.Sprintf("largest partition image a container may declare (e.g. 64G; default: the device's partition size, else %d× the input data, at least %d MiB)", image.RatioLimit, image.FloorLimit>>20)}

// sizeLimitContext returns ctx carrying the size limit from --max-image-size and, when d is known, the
// catalog's partition sizes.
func sizeLimitContext(ctx context.Context, c *cli.Context, d *devices.Device) (context.Context, error) {
	var l image.SizeLimit
	if s := strings.TrimSpace(c.String("max-image-size")); s != "" {
		n, err := image.ParseSize(s)
		if err != nil {
			return nil, fmt.Errorf("--max-image-size: %w", err)
		}
		l.Max = n
	}
	if d != nil {
		for _, p := range d.Partitions {
			if p.Size > 0 {
				if l.Partitions == nil {
					l.Partitions = map[string]int64{}
				}
				l.Partitions[p.Name] = p.Size
			}
		}
	}
	return image.WithSizeLimit(ctx, l), nil
}
