package flash

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash/plan"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/progress"
)

// A phone's state while a batch runs, then its result.
const (
	StateWaiting    = "waiting"
	StateConnecting = "connecting"
	StateChecking   = "checking"
	StateFlashing   = "flashing"

	ResultOK      = "ok"
	ResultRefused = "refused" // a safety check said no; nothing was written
	ResultSkipped = "skipped" // no bundle for the phone's product
	ResultFailed  = "failed"  // connection or write failure; the phone may be half flashed
)

// NoteDryRun marks the row of a phone a dry run checked.
const NoteDryRun = "dry run: nothing was written"

// Status is one phone's row: live while it flashes, its result at the end.
type Status struct {
	Serial    string `json:"serial"`
	Transport string `json:"transport"`
	// Model is the catalog's name for the phone's product (the product itself when the catalog does
	// not know it).
	Model   string `json:"model,omitempty"`
	Product string `json:"product,omitempty"`
	// SerialNo is what the phone answers to getvar serialno (for USB phones the same as Serial).
	SerialNo string `json:"serialno,omitempty"`
	Bundle   string `json:"bundle,omitempty"`
	State    string `json:"state"`
	Step     string `json:"step,omitempty"`
	Index    int    `json:"step_index"` // 1-based, 0 before the first command
	Steps    int    `json:"steps"`
	// Bytes of the plan's images downloaded so far, of Total; Rate in bytes per second; ETA in seconds
	// (-1 unknown).
	Bytes   int64    `json:"bytes"`
	Total   int64    `json:"total"`
	Rate    float64  `json:"rate"`
	ETA     float64  `json:"eta"`
	Reasons []string `json:"reasons,omitempty"`
	Notes   []string `json:"notes,omitempty"`
	// Written is what was sent to the phone in download commands (0 for a refusal or a skip).
	Written int64     `json:"bytes_written"`
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	Log     string    `json:"log,omitempty"`

	connectFailed bool // the phone could not be reached at all (a station retries those)
}

// Finished reports whether the status is a result.
func (s Status) Finished() bool {
	switch s.State {
	case ResultOK, ResultRefused, ResultSkipped, ResultFailed:
		return true
	}
	return false
}

// BatchOptions tune FlashPhone and Batch.
type BatchOptions struct {
	// Dial connects to a phone by serial (required).
	Dial func(ctx context.Context, serial string) (Device, io.Closer, error)
	// Preflight tunes the safety checks.
	Preflight PreflightOptions
	// DryRun stops after pre-flight: the plan is logged, nothing is written.
	DryRun bool
	// LogDir receives one transcript per phone (serial.log, appended to); "" for none.
	LogDir string
	// JournalDir holds the resume journals (one per phone serial); "" for none.
	JournalDir string
	Resume     bool
	// Catalog names the models (nil: the product is the model).
	Catalog *devices.Catalog
	// Observe receives every change of a phone's row (byte progress at most every ObserveEvery). It is
	// called from the phones' goroutines and must not block for long.
	Observe      func(Status)
	ObserveEvery time.Duration
	// ReconnectTimeout bounds the wait for a phone rebooting into fastbootd (default 90 s).
	ReconnectTimeout time.Duration

	// Parallel caps how many phones are worked on at once (0: all of them). A hub shares one USB link
	// and usbcore one buffer budget among its phones; the others wait, shown as waiting.
	Parallel int

	// slots hold the Parallel tokens; Batch and Station set it.
	slots chan struct{}
	// claims keep one phone reached under two names from being written by two connections at once.
	// Batch and Station set it.
	claims *claims
}

// LogName is the transcript file name for a serial.
func LogName(serial string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, serial) + ".log"
}

// phone tracks one phone's row and transcript.
type phone struct {
	opt  BatchOptions
	mu   sync.Mutex
	st   Status
	log  io.Writer
	last time.Time // last byte-progress notification

	bytes   atomic.Int64
	firstAt atomic.Int64 // unix nanos of the first byte
}

func (ph *phone) logf(format string, a ...any) {
	if ph.log != nil {
		fmt.Fprintf(ph.log, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05.000")}, a...)...)
	}
}

// update changes the row under the lock and notifies the observer.
func (ph *phone) update(f func(*Status)) {
	ph.mu.Lock()
	f(&ph.st)
	ph.fill()
	st := ph.snapshot()
	ph.mu.Unlock()
	if ph.opt.Observe != nil {
		ph.opt.Observe(st)
	}
}

// fill computes the derived fields (bytes, rate, ETA, elapsed); the lock is held.
func (ph *phone) fill() {
	ph.st.Bytes = ph.bytes.Load()
	ph.st.Written = ph.st.Bytes
	ph.st.Seconds = time.Since(ph.st.Started).Seconds()
	ph.st.Rate, ph.st.ETA = 0, -1
	if first := ph.firstAt.Load(); first != 0 && ph.st.Bytes > 0 {
		if el := time.Since(time.Unix(0, first)).Seconds(); el > 0 {
			ph.st.Rate = float64(ph.st.Bytes) / el
			if ph.st.Total >= ph.st.Bytes {
				ph.st.ETA = float64(ph.st.Total-ph.st.Bytes) / ph.st.Rate
			}
		}
	}
}

func (ph *phone) snapshot() Status {
	s := ph.st
	s.Reasons = append([]string(nil), ph.st.Reasons...)
	s.Notes = append([]string(nil), ph.st.Notes...)
	return s
}

// Task implements progress.Reporter: every image's bytes count towards the phone's one bar.
func (ph *phone) Task(name string, total int64) progress.Task { return phoneTask{ph} }

type phoneTask struct{ ph *phone }

func (t phoneTask) Add(n int64) {
	ph := t.ph
	ph.firstAt.CompareAndSwap(0, time.Now().UnixNano())
	ph.bytes.Add(n)
	every := ph.opt.ObserveEvery
	if every <= 0 {
		every = 200 * time.Millisecond
	}
	ph.mu.Lock()
	due := time.Since(ph.last) >= every
	if due {
		ph.last = time.Now()
	}
	ph.mu.Unlock()
	if due {
		ph.update(func(*Status) {})
	}
}

func (t phoneTask) Done(error) {}

// reasons splits an error into the reasons it lists (a refusal's every reason; otherwise its lines).
func reasons(err error) []string {
	var re *plan.RefusedError
	if errors.As(err, &re) {
		return append([]string(nil), re.Reasons...)
	}
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "- ")); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// FlashPhone connects to one phone, picks its plan among cands, checks it and flashes it, and
// returns its result. It never returns an error: every outcome is a row (a batch goes on with the
// other phones).
func FlashPhone(ctx context.Context, serial string, cands []Candidate, opt BatchOptions) Status {
	first := StateConnecting
	if opt.slots != nil {
		first = StateWaiting
	}
	ph := &phone{opt: opt, st: Status{Serial: serial, Transport: Transport(serial), State: first, Started: time.Now().UTC(), ETA: -1}}
	if opt.LogDir != "" {
		path := filepath.Join(opt.LogDir, LogName(serial))
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			ph.st.Notes = append(ph.st.Notes, fmt.Sprintf("no transcript: %v", err))
		} else {
			defer f.Close()
			ph.log, ph.st.Log = f, path
		}
	}
	ph.logf("=== %s (%s) ===", serial, ph.st.Transport)
	ph.update(func(*Status) {})
	finish := func(result string, err error, format string, a ...any) Status {
		ph.update(func(s *Status) {
			s.State = result
			if err != nil {
				s.Reasons = append(s.Reasons, reasons(err)...)
			}
			if format != "" {
				s.Reasons = append(s.Reasons, fmt.Sprintf(format, a...))
			}
			s.Step = ""
		})
		ph.mu.Lock()
		st := ph.snapshot()
		ph.mu.Unlock()
		ph.logf("result: %s (%.1f s, %d bytes written)", st.State, st.Seconds, st.Written)
		for _, r := range st.Reasons {
			ph.logf("  reason: %s", r)
		}
		return st
	}

	if opt.slots != nil {
		// Waiting (the row's first state) until one of the --parallel slots is free.
		select {
		case opt.slots <- struct{}{}:
		default:
			ph.logf("waiting: %d phones are being flashed (--parallel)", cap(opt.slots))
			select {
			case opt.slots <- struct{}{}:
			case <-ctx.Done():
				return finish(ResultSkipped, nil, "stopped before its turn came (--parallel): nothing was done")
			}
		}
		defer func() { <-opt.slots }()
		ph.update(func(s *Status) { s.State = StateConnecting })
	}
	if opt.Dial == nil {
		return finish(ResultFailed, nil, "no fastboot transport in this build")
	}
	dev, closer, err := opt.Dial(ctx, serial)
	if err != nil {
		ph.logf("connect: %v", err)
		ph.st.connectFailed = true
		return finish(ResultFailed, nil, "cannot connect to %s: %v (check the cable, or that the phone is in fastboot mode and the address is right)", serial, err)
	}
	defer func() { closer.Close() }()

	ph.update(func(s *Status) { s.State = StateChecking })
	pr := probeDevice(ctx, dev, cands)
	ph.update(func(s *Status) { s.Product, s.Model = pr.product, modelName(opt.Catalog, pr.product) })
	ph.logf("product %q, serialno %q, slot-count %d", pr.product, pr.serialno, pr.slotCount)
	if opt.claims != nil && pr.serialno != "" {
		// Held for the whole batch (a station lets go when the claiming name disappears): a phone
		// listed twice is flashed once, however the two connections' timing falls.
		loc := ""
		if l, ok := dev.(Locator); ok {
			loc = l.Location()
		}
		if other, ok := opt.claims.take(pr.serialno, serial, loc); !ok {
			return finish(ResultRefused, nil, "this phone (serialno %s) is also listed as %s and is flashed there: one phone, one flash", pr.serialno, other)
		}
	}
	cand, note, err := choose(cands, pr)
	if errors.Is(err, ErrNoBundle) {
		return finish(ResultSkipped, nil, "no bundle for %s", pr.product)
	}
	if err != nil {
		return finish(ResultRefused, err, "")
	}
	ph.update(func(s *Status) {
		s.Bundle = cand.Name
		if note != "" {
			s.Notes = append(s.Notes, note)
		}
	})
	ph.logf("bundle %s (%s)", cand.Name, cand.Plan.Codename)
	chk, err := Preflight(ctx, dev, cand.Plan, opt.Preflight)
	if err != nil {
		if errors.Is(err, failure.ErrRefused) {
			return finish(ResultRefused, err, "")
		}
		return finish(ResultFailed, err, "")
	}
	var total int64
	for _, c := range chk.Commands {
		if c.Op == plan.OpFlash {
			if st, err := os.Stat(c.Image); err == nil {
				total += st.Size()
			}
		}
	}
	ph.update(func(s *Status) {
		s.SerialNo = chk.Facts.Serial
		s.Steps, s.Total = len(chk.Commands), total
		s.Notes = append(s.Notes, chk.Notes...)
	})
	ph.logf("facts: serialno %s, unlocked %s, slot %q, anti %q", chk.Facts.Serial, chk.Facts.Unlocked, chk.Facts.CurrentSlot, chk.Facts.Anti)
	for _, n := range chk.Notes {
		ph.logf("note: %s", n)
	}
	for _, c := range chk.Commands {
		ph.logf("plan: %s", c)
	}
	if opt.DryRun {
		ph.update(func(s *Status) { s.Notes = append(s.Notes, NoteDryRun) })
		return finish(ResultOK, nil, "")
	}

	ph.update(func(s *Status) { s.State = StateFlashing })
	ropt := RunOptions{
		Progress: ph,
		Resume:   opt.Resume,
		Events: func(ev Event) {
			line := fmt.Sprintf("%s %d/%d %s", ev.Kind, ev.Index+1, ev.Total, ev.Command)
			if ev.Error != "" {
				line += ": " + ev.Error
			}
			ph.logf("%s", line)
			ph.update(func(s *Status) {
				if ev.Kind == "start" || ev.Kind == "skip" {
					s.Step, s.Index = ev.Command, ev.Index+1
				}
			})
		},
		Reconnect: func(ctx context.Context) (Device, error) {
			closer.Close()
			wait := opt.ReconnectTimeout
			if wait <= 0 {
				wait = 90 * time.Second
			}
			deadline := time.Now().Add(wait)
			for {
				d, cl, err := opt.Dial(ctx, serial)
				if err == nil {
					closer = cl
					return d, nil
				}
				if time.Now().After(deadline) || ctx.Err() != nil {
					return nil, fmt.Errorf("the phone did not come back after rebooting into fastbootd: %w", err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
		},
	}
	if opt.JournalDir != "" {
		if err := os.MkdirAll(opt.JournalDir, 0o755); err == nil {
			ropt.Journal = filepath.Join(opt.JournalDir, strings.TrimSuffix(LogName(chk.Facts.Serial), ".log")+".json")
		}
	}
	if err := Run(ctx, dev, cand.Plan, chk, ropt); err != nil {
		if errors.Is(err, failure.ErrRefused) && ph.bytes.Load() == 0 {
			return finish(ResultRefused, err, "")
		}
		return finish(ResultFailed, err, "")
	}
	return finish(ResultOK, nil, "")
}

func modelName(cat *devices.Catalog, product string) string {
	if cat != nil && product != "" {
		if ds := cat.ByProduct(product); len(ds) > 0 {
			return ds[0].DisplayName()
		}
	}
	return product
}

// Summary is a batch's results.
type Summary struct {
	Phones  []Status `json:"phones"`
	OK      int      `json:"ok"`
	Refused int      `json:"refused"`
	Skipped int      `json:"skipped"`
	Failed  int      `json:"failed"`
	Seconds float64  `json:"seconds"`
}

// Add counts one result.
func (s *Summary) Add(st Status) {
	s.Phones = append(s.Phones, st)
	switch st.State {
	case ResultOK:
		s.OK++
	case ResultRefused:
		s.Refused++
	case ResultSkipped:
		s.Skipped++
	default:
		s.Failed++
	}
}

// Err is the batch's outcome as an error: nil when every phone is ok or skipped, a refusal (exit 3)
// when some were refused and none failed, an I/O failure (exit 5) when any failed.
func (s *Summary) Err() error {
	n := len(s.Phones)
	switch {
	case s.Failed > 0:
		return failure.Kinded(failure.ErrIO, fmt.Errorf("flash: %d of %d phones failed, %d refused, %d ok, %d skipped (see the reasons above and each phone's log; a failed phone may be half flashed: run again, with --resume)", s.Failed, n, s.Refused, s.OK, s.Skipped))
	case s.Refused > 0:
		return failure.Kinded(failure.ErrRefused, fmt.Errorf("flash: %d of %d phones refused for safety (nothing was written to them), %d ok, %d skipped", s.Refused, n, s.OK, s.Skipped))
	}
	return nil
}

// Batch flashes every serial concurrently, each with the plan for its product among cands; one phone's
// trouble never stops the others. The results are in the order of serials.
func Batch(ctx context.Context, serials []string, cands []Candidate, opt BatchOptions) *Summary {
	start := time.Now()
	if opt.claims == nil {
		opt.claims = &claims{}
	}
	if opt.slots == nil && opt.Parallel > 0 {
		opt.slots = make(chan struct{}, opt.Parallel)
	}
	res := make([]Status, len(serials))
	if opt.Observe != nil {
		for _, s := range serials {
			opt.Observe(Status{Serial: s, Transport: Transport(s), State: StateWaiting, ETA: -1})
		}
	}
	var wg sync.WaitGroup
	for i, s := range serials {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = FlashPhone(ctx, s, cands, opt)
		}()
	}
	wg.Wait()
	sum := &Summary{}
	for _, r := range res {
		sum.Add(r)
	}
	sum.Seconds = time.Since(start).Seconds()
	return sum
}
