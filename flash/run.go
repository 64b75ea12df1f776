package flash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/romforge/romforge/flash/plan"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
	"github.com/romforge/romforge/progress"
)

// Event is one step's start, end or failure, for --json output and per-device logs.
type Event struct {
	Time    time.Time `json:"time"`
	Serial  string    `json:"serial,omitempty"`
	Kind    string    `json:"event"` // start, done, error, skip
	Index   int       `json:"index"`
	Total   int       `json:"total"`
	Command string    `json:"command"`
	Error   string    `json:"error,omitempty"`
	// For a finished flash step: bytes downloaded, seconds in download commands (their rate is the
	// link's) and seconds in flash commands (the device writing; the host waits).
	DownloadBytes   int64   `json:"download_bytes,omitempty"`
	DownloadSeconds float64 `json:"download_seconds,omitempty"`
	FlashSeconds    float64 `json:"flash_seconds,omitempty"`
}

// transferTimes sums where a flash step's time went.
type transferTimes struct {
	bytes          int64
	download, save time.Duration
}

func (t *transferTimes) timed(size int64, dl func() error, fl func() error) error {
	start := time.Now()
	if err := dl(); err != nil {
		return err
	}
	mid := time.Now()
	t.bytes += size
	t.download += mid.Sub(start)
	err := fl()
	t.save += time.Since(mid)
	return err
}

// RunOptions tune Run.
type RunOptions struct {
	Progress progress.Reporter
	// Journal is where completed steps are recorded ("" for none); Resume continues from it.
	Journal string
	Resume  bool
	// Reconnect returns a fresh connection after the device rebooted into fastbootd.
	Reconnect func(ctx context.Context) (Device, error)
	// Events receives step events (may be nil).
	Events func(Event)
}

// Journal records progress of one plan on one device.
type Journal struct {
	Plan    string `json:"plan_sha256"`
	Serial  string `json:"serialno"`
	Product string `json:"product"`
	Done    int    `json:"done"` // commands completed, in order
	// Images fingerprints every image file of the plan (size, modification time and the bundle's
	// sha256 when it recorded one): a resume must not mix pieces of two different builds.
	Images map[string]string `json:"images,omitempty"`
}

// imageFingerprints stats the plan's images. A rewritten image keeps its path and usually its size,
// which is all the plan hash sees; its modification time changes.
func imageFingerprints(p *plan.Plan, chk *Checked) map[string]string {
	sums := map[string]string{}
	if p != nil {
		for _, s := range p.Steps {
			if s.Image != "" && s.SHA256 != "" {
				sums[s.Image] = strings.ToLower(s.SHA256)
			}
		}
	}
	out := map[string]string{}
	for _, c := range chk.Commands {
		if c.Image == "" {
			continue
		}
		fp := "missing"
		if st, err := os.Stat(c.Image); err == nil {
			fp = fmt.Sprintf("%d bytes, modified %s", st.Size(), st.ModTime().UTC().Format(time.RFC3339Nano))
		}
		if h := sums[c.Image]; h != "" {
			fp += ", sha256 " + h
		}
		out[c.Image] = fp
	}
	return out
}

func planHash(c *Checked) string {
	b, _ := json.Marshal(c.Commands)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func loadJournal(path string) (*Journal, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var j Journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("flash: journal %s: %w", path, err))
	}
	return &j, nil
}

func saveJournal(path string, j *Journal) error {
	b, _ := json.MarshalIndent(j, "", "  ")
	// Flushed before the next command goes out: after a power cut the journal says where the flash was.
	return safeio.WriteFile(path, b, 0o666)
}

// Run executes a checked plan. It stops at the first failed command; with a journal, Resume continues
// after the last completed command once the device's identity matches the journal.
func Run(ctx context.Context, d Device, p *plan.Plan, chk *Checked, opt RunOptions) error {
	rep := progress.OrDiscard(opt.Progress)
	emit := func(e Event) {
		if opt.Events != nil {
			e.Time = time.Now().UTC()
			e.Serial = chk.Facts.Serial
			e.Total = len(chk.Commands)
			opt.Events(e)
		}
	}
	j := &Journal{Plan: planHash(chk), Serial: chk.Facts.Serial, Product: chk.Facts.Product, Images: imageFingerprints(p, chk)}
	if opt.Journal != "" && opt.Resume {
		old, err := loadJournal(opt.Journal)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return err
		case old.Plan != j.Plan:
			return failure.Kinded(failure.ErrRefused, fmt.Errorf("flash: the journal %s belongs to a different plan; remove it to start over", opt.Journal))
		case old.Serial != j.Serial || old.Product != j.Product:
			return failure.Kinded(failure.ErrRefused, fmt.Errorf("flash: the journal is for device %s (%s), this is %s (%s): refusing to resume on another phone", old.Serial, old.Product, j.Serial, j.Product))
		default:
			for img, fp := range old.Images { // journals of older builds have none: nothing to compare
				if now := j.Images[img]; now != fp {
					return failure.Kinded(failure.ErrRefused, fmt.Errorf("flash: %s changed since the interrupted flash (then %s, now %s): the phone may hold parts of the old image; run without --resume to flash everything again", img, fp, now))
				}
			}
			j.Done = old.Done
		}
	}
	// Written before the first command, so that a cut in it leaves a journal of this plan (and not a
	// stale one of an earlier plan) for --resume to find.
	if opt.Journal != "" {
		if err := saveJournal(opt.Journal, j); err != nil {
			return failure.Kinded(failure.ErrIO, fmt.Errorf("flash: writing the journal: %w", err))
		}
	}
	maxDL := chk.Facts.MaxDownload
	if maxDL <= 0 {
		maxDL = 256 << 20
	}
	for i, c := range chk.Commands {
		if i < j.Done {
			emit(Event{Kind: "skip", Index: i, Command: c.String()})
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("flash: stopped before %q (%d of %d done; --resume continues): %w", c.String(), i, len(chk.Commands), err)
		}
		emit(Event{Kind: "start", Index: i, Command: c.String()})
		var err error
		var tt transferTimes
		switch c.Op {
		case plan.OpFlash:
			err = flashImage(ctx, d, c, maxDL, rep, &tt)
		case plan.OpErase:
			err = d.Erase(ctx, c.Partition)
		case plan.OpSetActive:
			err = d.SetActive(ctx, c.Slot)
		case "resize-logical-partition":
			err = d.ResizeLogicalPartition(ctx, c.Partition, c.Size)
		case "snapshot-update":
			err = d.SnapshotUpdate(ctx, "cancel")
		case plan.OpReboot:
			err = d.Reboot(ctx, "")
		case plan.OpRebootBootloader:
			err = d.Reboot(ctx, "bootloader")
		case plan.OpRebootFastboot:
			if getvar(ctx, d, "is-userspace") == "yes" {
				// Already in fastbootd: a resumed run after the reboot, or a phone that started there.
				break
			}
			if err = d.Reboot(ctx, "fastboot"); err == nil {
				if opt.Reconnect == nil {
					err = errors.New("the device rebooted into fastbootd but no reconnect is configured")
				} else if d, err = opt.Reconnect(ctx); err == nil {
					if s := getvar(ctx, d, "serialno"); s != chk.Facts.Serial {
						err = failure.Kinded(failure.ErrRefused, fmt.Errorf("after reboot the device reports serial %q, not %q", s, chk.Facts.Serial))
					} else if getvar(ctx, d, "is-userspace") != "yes" {
						err = errors.New("the device did not come back in fastbootd (is-userspace is not yes)")
					}
				}
			}
		default:
			err = fmt.Errorf("unknown command %q", c.Op)
		}
		if err != nil {
			emit(Event{Kind: "error", Index: i, Command: c.String(), Error: err.Error()})
			if !errors.Is(err, failure.ErrRefused) && !errors.Is(err, failure.ErrInvalid) {
				err = failure.Kinded(failure.ErrIO, err)
			}
			hint := ""
			if opt.Journal != "" {
				hint = "; reconnect and run again with --resume"
			}
			return fmt.Errorf("flash: %q failed after %d of %d commands%s: %w", c.String(), i, len(chk.Commands), hint, err)
		}
		j.Done = i + 1
		if opt.Journal != "" {
			if err := saveJournal(opt.Journal, j); err != nil {
				return failure.Kinded(failure.ErrIO, fmt.Errorf("flash: writing the journal after %q: %w", c.String(), err))
			}
		}
		emit(Event{Kind: "done", Index: i, Command: c.String(), DownloadBytes: tt.bytes,
			DownloadSeconds: tt.download.Seconds(), FlashSeconds: tt.save.Seconds()})
	}
	if opt.Journal != "" {
		os.Remove(opt.Journal)
	}
	return nil
}

// flashImage downloads and flashes one image, as one transfer when it fits max-download-size (sparse
// files are sent as they are) and as sparse pieces otherwise, like the AOSP client.
func flashImage(ctx context.Context, d Device, c Command, maxDL int64, rep progress.Reporter, tt *transferTimes) error {
	f, err := os.Open(c.Image)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() <= maxDL {
		task := rep.Task("flash "+c.Partition, st.Size())
		err := tt.timed(st.Size(),
			func() error { return d.Download(ctx, io.NewSectionReader(f, 0, st.Size()), st.Size(), task) },
			func() error { return d.Flash(ctx, c.Partition) })
		task.Done(err)
		return err
	}
	var img interface {
		ReadAt([]byte, int64) (int, error)
		Size() int64
	}
	if sparse.IsSparse(f) {
		si, err := sparse.NewReader(f, st.Size())
		if err != nil {
			return err
		}
		img = si
	} else {
		img = &fileImage{f, st.Size()}
	}
	pieces, err := sparse.SplitContext(ctx, img, maxDL, nil)
	if err != nil {
		return fmt.Errorf("splitting %s for max-download-size %d: %w", c.Image, maxDL, err)
	}
	var total int64
	for i := range pieces {
		total += pieces[i].Size()
	}
	task := rep.Task("flash "+c.Partition, total)
	for i := range pieces {
		if err := ctx.Err(); err != nil {
			task.Done(err)
			return err
		}
		pr, pw := io.Pipe()
		go func(p *sparse.Piece) {
			_, err := p.WriteTo(pw)
			pw.CloseWithError(err)
		}(&pieces[i])
		err := tt.timed(pieces[i].Size(),
			func() error { return d.Download(ctx, pr, pieces[i].Size(), task) },
			func() error { pr.Close(); return d.Flash(ctx, c.Partition) })
		pr.Close()
		if err != nil {
			task.Done(err)
			return fmt.Errorf("piece %d of %d: %w", i+1, len(pieces), err)
		}
	}
	task.Done(nil)
	return nil
}

type fileImage struct {
	*os.File
	n int64
}

func (f *fileImage) Size() int64 { return f.n }
