// Package progress is the one small interface through which long-running library work reports how far it
// has got. Libraries take a Reporter; the CLI renders it (bars on a terminal, JSON lines with --json,
// nothing with --quiet) and tests use a Recorder.
package progress

import (
	"io"
	"sync"
	"sync/atomic"
)

// Reporter starts tasks. Implementations must be safe for concurrent use and must never block the caller
// for long: progress is advisory and must not slow the work it describes.
type Reporter interface {
	// Task starts a unit of work named name with total bytes (or items); total <= 0 means unknown.
	Task(name string, total int64) Task
}

// Task is one unit of work in progress.
type Task interface {
	// Add records n more bytes (or items) done.
	Add(n int64)
	// Done ends the task; err is nil on success. Calling Done more than once is allowed; only the first counts.
	Done(err error)
}

// Discard is a Reporter that drops everything.
var Discard Reporter = discard{}

type discard struct{}

func (discard) Task(string, int64) Task { return discardTask{} }

type discardTask struct{}

func (discardTask) Add(int64)  {}
func (discardTask) Done(error) {}

// OrDiscard returns r, or Discard when r is nil, so libraries can accept a nil Reporter.
func OrDiscard(r Reporter) Reporter {
	if r == nil {
		return Discard
	}
	return r
}

// Reader returns a reader that counts the bytes read through it into t.
func Reader(r io.Reader, t Task) io.Reader { return &countingReader{r: r, t: t} }

type countingReader struct {
	r io.Reader
	t Task
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.t.Add(int64(n))
	}
	return n, err
}

// Writer returns a writer that counts the bytes written through it into t.
func Writer(w io.Writer, t Task) io.Writer { return &countingWriter{w: w, t: t} }

type countingWriter struct {
	w io.Writer
	t Task
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if n > 0 {
		c.t.Add(int64(n))
	}
	return n, err
}

// Event is one thing a Recorder saw.
type Event struct {
	Task  string
	Kind  string // "start", "add", "done"
	Total int64  // for start
	N     int64  // for add
	Err   error  // for done
}

// Recorder is a Reporter for tests: it keeps every event in order.
type Recorder struct {
	mu     sync.Mutex
	events []Event
}

// Task implements Reporter.
func (r *Recorder) Task(name string, total int64) Task {
	r.record(Event{Task: name, Kind: "start", Total: total})
	return &recTask{r: r, name: name}
}

func (r *Recorder) record(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// Events returns a copy of the events recorded so far.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Total returns the sum of Add calls for the named task.
func (r *Recorder) Total(name string) int64 {
	var n int64
	for _, e := range r.Events() {
		if e.Task == name && e.Kind == "add" {
			n += e.N
		}
	}
	return n
}

type recTask struct {
	r    *Recorder
	name string
	done atomic.Bool
}

func (t *recTask) Add(n int64) { t.r.record(Event{Task: t.name, Kind: "add", N: n}) }
func (t *recTask) Done(err error) {
	if t.done.CompareAndSwap(false, true) {
		t.r.record(Event{Task: t.name, Kind: "done", Err: err})
	}
}
