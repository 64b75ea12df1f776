package fastboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/progress"
)

// MaxDownloadSize asks max-download-size (decimal or 0x hex, as devices answer it).
func (c *Client) MaxDownloadSize(ctx context.Context) (int64, error) {
	v, err := c.GetVar(ctx, "max-download-size")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 0, 64)
	if err != nil || n <= 0 {
		return 0, &ProtocolError{Command: "getvar:max-download-size", Msg: fmt.Sprintf("answer %q is not a size", v)}
	}
	return n, nil
}

// FlashImage downloads and flashes one image (a raw or Android sparse file of size bytes) to
// partition exactly as named. It goes in one transfer when it fits max (sparse files are sent as they
// are); otherwise it is cut into sparse pieces of at most max bytes — sparse input keeps its chunks,
// raw input is resparsed first — each downloaded and flashed in turn, as the AOSP client does.
func (c *Client) FlashImage(ctx context.Context, partition string, r io.ReaderAt, size, max int64, task progress.Task) error {
	if task == nil {
		task = progress.Discard.Task("", 0)
	}
	isSparse := sparse.IsSparse(r)
	if size <= max {
		if err := c.Download(ctx, io.NewSectionReader(r, 0, size), size, task); err != nil {
			return err
		}
		return c.Flash(ctx, partition)
	}
	var src image.Image = image.New(r, size)
	if isSparse {
		si, err := sparse.NewReader(r, size)
		if err != nil {
			return err
		}
		src = si
	}
	pieces, err := sparse.SplitContext(ctx, src, max, nil)
	if err != nil {
		return fmt.Errorf("fastboot: splitting the image for max-download-size %d: %w", max, err)
	}
	for i := range pieces {
		p := &pieces[i]
		pr, pw := io.Pipe()
		go func() {
			_, err := p.WriteTo(pw)
			pw.CloseWithError(err)
		}()
		err := c.Download(ctx, pr, p.Size(), task)
		pr.CloseWithError(errors.New("download ended"))
		if err == nil {
			err = c.Flash(ctx, partition)
		}
		if err != nil {
			return fmt.Errorf("fastboot: sparse piece %d of %d: %w", i+1, len(pieces), err)
		}
	}
	return nil
}

// FlashFileOptions tune FlashPartition.
type FlashFileOptions struct {
	// Slot is "", "a", "b" or "all" (AOSP --slot); "" is the current slot on A/B phones.
	Slot string
	// MaxDownload overrides max-download-size (AOSP -S); 0 asks the device.
	MaxDownload int64
}

// FlashPartition flashes an image file to a partition with the AOSP client's sequence: has-slot (and
// current-slot) picks the slot suffix, max-download-size limits transfers, a logical partition in
// fastbootd is resized to the image's expanded size first, then download and flash (split when needed).
// It returns the partition names written.
func (c *Client) FlashPartition(ctx context.Context, partition string, r io.ReaderAt, size int64, opt FlashFileOptions, task progress.Task) ([]string, error) {
	targets := []string{partition}
	if hs, err := c.GetVar(ctx, "has-slot:"+partition); err == nil && hs == "yes" {
		switch opt.Slot {
		case "":
			cur, err := c.GetVar(ctx, "current-slot")
			cur = strings.TrimPrefix(strings.TrimSpace(cur), "_")
			if err != nil || cur == "" {
				return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("fastboot: flash %s: the device does not say its current slot", partition))
			}
			targets = []string{partition + "_" + cur}
		case "a", "b":
			targets = []string{partition + "_" + opt.Slot}
		case "all":
			targets = []string{partition + "_a", partition + "_b"}
		default:
			return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("fastboot: slot %q: want a, b or all", opt.Slot))
		}
	} else if err != nil && !isRemote(err) {
		return nil, err
	}
	max := opt.MaxDownload
	if max <= 0 {
		var err error
		if max, err = c.MaxDownloadSize(ctx); err != nil {
			return nil, err
		}
	}
	max = min(max, 1<<30)
	expanded := size
	if sparse.IsSparse(r) {
		si, err := sparse.NewReader(r, size)
		if err != nil {
			return nil, err
		}
		expanded = si.Size()
	}
	for _, t := range targets {
		if v, err := c.GetVar(ctx, "is-logical:"+t); err == nil && v == "yes" {
			if err := c.ResizeLogicalPartition(ctx, t, expanded); err != nil {
				return nil, err
			}
		} else if err != nil && !isRemote(err) {
			return nil, err
		}
		if err := c.FlashImage(ctx, t, r, size, max, task); err != nil {
			return nil, err
		}
	}
	return targets, nil
}

func isRemote(err error) bool {
	var re *RemoteError
	return errors.As(err, &re)
}
