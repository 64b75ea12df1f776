package flash

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Tally counts a station's results so far.
type Tally struct {
	OK      int `json:"ok"`
	Refused int `json:"refused"`
	Skipped int `json:"skipped"`
	Failed  int `json:"failed"`
}

// StationOptions tune Station.
type StationOptions struct {
	Batch      BatchOptions
	Candidates []Candidate
	// Serials are always watched (e.g. --serial tcp:… given on the command line).
	Serials []string
	// SerialsFile is re-read at every poll: a line added is a phone plugged in, a line removed a phone
	// unplugged (how TCP and UDP phones come and go).
	SerialsFile string
	// ListUSB lists the fastboot phones on USB (hotplug); nil watches no USB.
	ListUSB func(ctx context.Context) ([]string, error)
	// Poll is how often USB and the serials file are looked at (default 1 s).
	Poll time.Duration
	// OnResult receives each phone's result and the tally after it.
	OnResult func(Status, Tally)
	// Warn receives problems that do not stop the station (an unreadable serials file, USB listing
	// errors), once per distinct message.
	Warn func(string)
}

// Station flashes each phone as it appears until ctx ends, then waits for the phones in progress
// (cancelled with ctx, they stop between transfers) and returns every result. A phone is flashed once
// per appearance: after its result it must disappear (unplugged, rebooted out of fastboot, or its line
// removed from the serials file) before it is flashed again, so a phone left on the bench is never
// flashed twice in a row. A network phone that cannot be reached yet is retried at the next poll
// rather than counted as failed.
func Station(ctx context.Context, opt StationOptions) *Summary {
	poll := opt.Poll
	if poll <= 0 {
		poll = time.Second
	}
	start := time.Now()
	if opt.Batch.claims == nil {
		opt.Batch.claims = &claims{}
	}
	if opt.Batch.slots == nil && opt.Batch.Parallel > 0 {
		opt.Batch.slots = make(chan struct{}, opt.Batch.Parallel)
	}
	sum := &Summary{}
	var (
		mu       sync.Mutex
		tally    Tally
		busy     = map[string]bool{}
		handled  = map[string]bool{}
		fileList []string
		warned   = map[string]bool{}
		wg       sync.WaitGroup
	)
	var warnMu sync.Mutex
	warn := func(msg string) {
		warnMu.Lock()
		defer warnMu.Unlock()
		if opt.Warn != nil && !warned[msg] {
			warned[msg] = true
			opt.Warn(msg)
		}
	}
	fixed, err := SplitSerials(opt.Serials)
	if err != nil {
		warn(err.Error())
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		present := append([]string(nil), fixed...)
		if opt.SerialsFile != "" {
			if l, err := ReadSerialsFile(opt.SerialsFile); err != nil {
				warn(fmt.Sprintf("serials file: %v (keeping the last good list)", err))
			} else {
				fileList = l
			}
			present = append(present, fileList...)
		}
		if opt.ListUSB != nil {
			if l, err := opt.ListUSB(ctx); err != nil {
				warn(fmt.Sprintf("USB: %v", err))
			} else {
				present = append(present, l...)
			}
		}
		present = dedupe(present)
		isPresent := map[string]bool{}
		for _, s := range present {
			isPresent[s] = true
		}
		mu.Lock()
		for s := range handled {
			if !isPresent[s] {
				delete(handled, s) // unplugged: flashed again when it comes back
			}
		}
		// Gone: the phone may come back under any name.
		opt.Batch.claims.release(func(s string) bool { return isPresent[s] || busy[s] })
		for _, s := range present {
			if busy[s] || handled[s] || ctx.Err() != nil {
				continue
			}
			busy[s] = true
			wg.Add(1)
			go func(s string) {
				defer wg.Done()
				st := FlashPhone(ctx, s, opt.Candidates, opt.Batch)
				mu.Lock()
				defer mu.Unlock()
				delete(busy, s)
				if st.connectFailed && ctx.Err() != nil {
					return // stopping: nothing happened to that phone
				}
				if st.connectFailed && Transport(s) != "usb" {
					warn(fmt.Sprintf("%s is not reachable yet; retrying", s))
					return // not there yet: try again at the next poll
				}
				handled[s] = true
				sum.Add(st)
				tally = Tally{OK: sum.OK, Refused: sum.Refused, Skipped: sum.Skipped, Failed: sum.Failed}
				if opt.OnResult != nil {
					opt.OnResult(st, tally)
				}
			}(s)
		}
		mu.Unlock()
		select {
		case <-ctx.Done():
			wg.Wait()
			sum.Seconds = time.Since(start).Seconds()
			return sum
		case <-tick.C:
		}
	}
}
