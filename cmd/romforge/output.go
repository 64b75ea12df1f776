package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/romforge/romforge/progress"
)

// printJSON writes v as indented JSON on stdout.
func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// logf prints a log line on stderr unless --quiet; with --json it is a {"event":"log"} line, so stderr
// stays JSON lines.
func (e *env) logf(format string, args ...any) {
	if e.quiet {
		return
	}
	if e.json {
		b, _ := json.Marshal(map[string]string{"event": "log", "message": fmt.Sprintf(format, args...)})
		e.stderr.Write(append(b, '\n'))
		return
	}
	fmt.Fprintf(e.stderr, format+"\n", args...)
}

// table returns a tabwriter on stdout; call Flush when done.
func (e *env) table() *tabwriter.Writer {
	return tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
}

// bold wraps s in bold when colors are on.
func (e *env) bold(s string) string {
	if !e.color {
		return s
	}
	return "\x1b[1m" + s + "\x1b[0m"
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// reporter returns how progress is shown: bars on a terminal, JSON lines on stderr with --json,
// nothing otherwise (so piped and --json output stays clean).
func (e *env) reporter() progress.Reporter {
	switch {
	case e.quiet:
		return progress.Discard
	case e.json:
		return &jsonReporter{w: e.stderr}
	case isTerminal(e.stderr):
		return &barReporter{w: e.stderr, color: e.color}
	}
	return progress.Discard
}

// jsonReporter writes one JSON object per event: {"event":"start|progress|done","task":…}.
// Progress events are throttled to a few per second per task.
type jsonReporter struct {
	mu sync.Mutex
	w  io.Writer
}

func (r *jsonReporter) emit(v map[string]any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, _ := json.Marshal(v)
	r.w.Write(append(b, '\n'))
}

func (r *jsonReporter) Task(name string, total int64) progress.Task {
	r.emit(map[string]any{"event": "start", "task": name, "total": total})
	return &jsonTask{r: r, name: name, total: total}
}

type jsonTask struct {
	r     *jsonReporter
	name  string
	total int64
	mu    sync.Mutex
	done  int64
	last  time.Time
	ended bool
}

func (t *jsonTask) Add(n int64) {
	t.mu.Lock()
	t.done += n
	now := time.Now()
	emit := now.Sub(t.last) > 250*time.Millisecond
	if emit {
		t.last = now
	}
	d := t.done
	t.mu.Unlock()
	if emit {
		t.r.emit(map[string]any{"event": "progress", "task": t.name, "done": d, "total": t.total})
	}
}

func (t *jsonTask) Done(err error) {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	t.ended = true
	d := t.done
	t.mu.Unlock()
	ev := map[string]any{"event": "done", "task": t.name, "done": d, "total": t.total}
	if err != nil {
		ev["event"], ev["error"] = "error", err.Error()
	}
	t.r.emit(ev)
}

// barReporter draws one progressbar/v3 bar per task on a terminal.
type barReporter struct {
	w     io.Writer
	color bool
}

func (r *barReporter) Task(name string, total int64) progress.Task {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(r.w),
		progressbar.OptionSetDescription(name),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(r.w) }),
		progressbar.OptionEnableColorCodes(r.color),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionFullWidth(),
	}
	if total <= 0 {
		total = -1
		opts = append(opts, progressbar.OptionSpinnerType(14))
	}
	return &barTask{bar: progressbar.NewOptions64(total, opts...), r: r}
}

type barTask struct {
	r    *barReporter
	bar  *progressbar.ProgressBar
	once sync.Once
}

func (t *barTask) Add(n int64) { _ = t.bar.Add64(n) }
func (t *barTask) Done(err error) {
	t.once.Do(func() {
		if err != nil {
			fmt.Fprintf(t.r.w, "\n%s: %v\n", strings.TrimSpace(t.bar.State().Description), err)
			return
		}
		_ = t.bar.Finish()
	})
}
