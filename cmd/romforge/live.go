package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/romforge/romforge/flash"
)

// liveView draws one line per phone on a terminal and redraws them in place. progressbar/v3 (the
// single-phone bars) owns the line its cursor is on and redraws it with a carriage return, so several
// of its bars on one terminal overwrite each other; this small renderer moves the cursor up over its
// own block of lines instead.
type liveView struct {
	mu     sync.Mutex
	w      io.Writer
	width  int
	height int
	color  bool
	rows   map[string]flash.Status
	order  []string
	tally  *flash.Tally
	drawn  int
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

func newLiveView(w io.Writer, color bool) *liveView {
	v := &liveView{w: w, color: color, width: 120, height: 40, rows: map[string]flash.Status{}, stop: make(chan struct{}), done: make(chan struct{})}
	if f, ok := w.(*os.File); ok {
		if cols, lines, err := term.GetSize(int(f.Fd())); err == nil && cols > 20 {
			v.width = cols
			if lines > 4 {
				v.height = lines
			}
		}
	}
	go func() {
		defer close(v.done)
		t := time.NewTicker(150 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-v.stop:
				return
			case <-t.C:
				v.draw()
			}
		}
	}()
	return v
}

// Update records a phone's row (flash.BatchOptions.Observe).
func (v *liveView) Update(s flash.Status) {
	v.mu.Lock()
	if _, ok := v.rows[s.Serial]; !ok {
		v.order = append(v.order, s.Serial)
	}
	v.rows[s.Serial] = s
	v.mu.Unlock()
}

// SetTally shows a station's running tally under the rows.
func (v *liveView) SetTally(t flash.Tally) {
	v.mu.Lock()
	v.tally = &t
	v.mu.Unlock()
}

// Close draws the final state and stops redrawing.
func (v *liveView) Close() {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return
	}
	v.closed = true
	v.mu.Unlock()
	close(v.stop)
	<-v.done
	v.draw()
}

func (v *liveView) draw() {
	v.mu.Lock()
	defer v.mu.Unlock()
	lines := v.linesLocked()
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.drawn)
	}
	for _, l := range lines {
		b.WriteString("\r\x1b[2K")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	for i := len(lines); i < v.drawn; i++ { // rows never go away, but be safe
		b.WriteString("\r\x1b[2K\n")
	}
	v.drawn = max(len(lines), v.drawn)
	io.WriteString(v.w, b.String())
}

// linesLocked renders every row as one line no wider than the terminal (a wrapped line would break
// the cursor arithmetic).
func (v *liveView) linesLocked() []string {
	var rows []flash.Status
	for _, k := range v.order {
		rows = append(rows, v.rows[k])
	}
	// Lines that scroll off the screen cannot be redrawn: a long station run shows the phones in
	// progress and the latest results only (the summary lists every one).
	room := v.height - 2
	hidden := 0
	if len(rows) > room {
		var keep []flash.Status
		active := 0
		for _, r := range rows {
			if !r.Finished() {
				active++
			}
		}
		finished := max(room-1-active, 0)
		for i := len(rows) - 1; i >= 0; i-- {
			r := rows[i]
			if !r.Finished() || finished > 0 {
				if r.Finished() {
					finished--
				}
				keep = append(keep, r)
			}
		}
		slices.Reverse(keep)
		if len(keep) > room-1 {
			keep = keep[len(keep)-(room-1):]
		}
		hidden = len(rows) - len(keep)
		rows = keep
	}
	lines := renderLiveLines(rows, v.width-1, time.Now())
	if hidden > 0 {
		lines = append([]string{clip(fmt.Sprintf("… %d more phones (all in the summary)", hidden), v.width-1)}, lines...)
	}
	if v.tally != nil {
		lines = append(lines, clip(fmt.Sprintf("station: ok %d · refused %d · skipped %d · failed %d  (Ctrl-C stops)", v.tally.OK, v.tally.Refused, v.tally.Skipped, v.tally.Failed), v.width-1))
	}
	return lines
}

// renderLiveLines formats rows as aligned lines: model, serial, state or step, bar, rate, ETA.
func renderLiveLines(rows []flash.Status, width int, now time.Time) []string {
	mw, sw := 5, 6
	for _, r := range rows {
		mw = max(mw, utf8.RuneCountInString(modelOf(r)))
		sw = max(sw, utf8.RuneCountInString(r.Serial))
	}
	mw, sw = min(mw, 28), min(sw, 30)
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		step := r.State
		if r.State == flash.StateFlashing && r.Step != "" {
			step = fmt.Sprintf("%d/%d %s", r.Index, r.Steps, printable(strings.TrimPrefix(r.Step, "fastboot ")))
		}
		if r.Finished() && len(r.Reasons) > 0 {
			step = r.State + ": " + printable(firstLine(r.Reasons[0]))
		}
		tail := ""
		if r.Total > 0 && !(r.Finished() && r.State != flash.ResultOK) {
			tail = fmt.Sprintf(" %s %3.0f%% %9s/s %s", bar(r.Bytes, r.Total, 20), 100*float64(min(r.Bytes, r.Total))/float64(r.Total), humanBytes(int64(r.Rate)), eta(r))
		} else if r.Finished() {
			tail = fmt.Sprintf(" %.1fs", r.Seconds)
		}
		head := fmt.Sprintf("%-*s %-*s ", mw, clip(modelOf(r), mw), sw, clip(printable(r.Serial), sw))
		room := width - utf8.RuneCountInString(head) - utf8.RuneCountInString(tail)
		if room < 8 {
			out = append(out, clip(head+step, width))
			continue
		}
		out = append(out, head+fmt.Sprintf("%-*s", room, clip(step, room))+tail)
	}
	return out
}

func modelOf(r flash.Status) string {
	if r.Model != "" {
		return printable(r.Model)
	}
	if r.Product != "" {
		return printable(r.Product)
	}
	return "?"
}

// printable replaces control characters: a phone's answers (its product, a FAIL message) reach the
// terminal, and an escape sequence in them must not move the cursor or recolour the screen.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '�'
		}
		return r
	}, s)
}

func eta(r flash.Status) string {
	if r.Finished() {
		return fmt.Sprintf("in %.1fs", r.Seconds)
	}
	if r.ETA < 0 {
		return "ETA --:--"
	}
	s := int(r.ETA + 0.5)
	return fmt.Sprintf("ETA %d:%02d", s/60, s%60)
}

func bar(done, total int64, w int) string {
	n := 0
	if total > 0 {
		n = int(min(done, total) * int64(w) / total)
	}
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", w-n) + "]"
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), 0
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGT"[i-1])
}

func clip(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	if n == 1 {
		return string(r[:1])
	}
	return string(r[:n-1]) + "…"
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// plainView is the live view when stderr is not a terminal: a line whenever a phone's state or step
// changes (never a byte tick), so logs stay readable.
type plainView struct {
	changes
	w io.Writer
}

// changes remembers each phone's last state and step, so a view reports changes and not byte ticks. Its
// lock also keeps one view's lines whole.
type changes struct {
	mu   sync.Mutex
	last map[string]string
}

// changed reports whether s differs from what the phone last showed; it locks until unlock is called.
func (c *changes) changed(s flash.Status) (ok bool, unlock func()) {
	c.mu.Lock()
	if c.last == nil {
		c.last = map[string]string{}
	}
	key := s.State + "\x00" + s.Step
	if c.last[s.Serial] == key {
		return false, c.mu.Unlock
	}
	c.last[s.Serial] = key
	return true, c.mu.Unlock
}

func (p *plainView) Update(s flash.Status) {
	ok, unlock := p.changed(s)
	defer unlock()
	if !ok {
		return
	}
	if s.State == flash.StateWaiting {
		return
	}
	line := fmt.Sprintf("%s %s: %s", time.Now().Format("15:04:05"), printable(s.Serial), s.State)
	if m := modelOf(s); m != "?" {
		line = fmt.Sprintf("%s %s (%s): %s", time.Now().Format("15:04:05"), printable(s.Serial), m, s.State)
	}
	if s.Step != "" {
		line += fmt.Sprintf(" %d/%d %s", s.Index, s.Steps, printable(s.Step))
	}
	for _, r := range s.Reasons {
		for _, l := range strings.Split(r, "\n") {
			line += "\n    " + printable(l)
		}
	}
	fmt.Fprintln(p.w, line)
}

// jsonView writes a JSON line on stderr whenever a phone's state or step changes, and its whole row
// when it finishes.
type jsonView struct {
	changes
	w io.Writer
}

func (j *jsonView) Update(s flash.Status) {
	ok, unlock := j.changed(s)
	defer unlock()
	if !ok {
		return
	}
	var ev any = map[string]any{"event": "phone", "serial": s.Serial, "model": s.Model, "state": s.State, "step": s.Step,
		"step_index": s.Index, "steps": s.Steps, "bytes": s.Bytes, "total": s.Total}
	if s.Finished() {
		ev = struct {
			Event string `json:"event"`
			flash.Status
		}{"result", s}
	}
	b, _ := json.Marshal(ev)
	j.w.Write(append(b, '\n'))
}

// writeSummary prints the results as a table whose columns stay aligned when a phone has several
// reasons or a reason spans lines: each reason line gets its own row under the REASONS column.
func writeSummary(w io.Writer, sum *flash.Summary, bold func(string) string) {
	head := []string{"MODEL", "SERIAL", "RESULT", "TIME", "REASONS"}
	var table [][]string
	for _, p := range sum.Phones {
		var lines []string
		for _, r := range p.Reasons {
			for i, l := range strings.Split(r, "\n") {
				l = printable(l)
				if i == 0 {
					l = "- " + l
				} else {
					l = "  " + l
				}
				lines = append(lines, l)
			}
		}
		if len(lines) == 0 {
			lines = []string{""}
			if p.Bundle != "" {
				lines[0] = "bundle " + p.Bundle
			}
			if slices.Contains(p.Notes, flash.NoteDryRun) {
				lines[0] = strings.TrimSpace(lines[0] + " (" + flash.NoteDryRun + ")")
			}
		}
		table = append(table, []string{modelOf(p), printable(p.Serial), p.State, fmt.Sprintf("%.1fs", p.Seconds), lines[0]})
		for _, l := range lines[1:] {
			table = append(table, []string{"", "", "", "", l})
		}
	}
	wd := make([]int, len(head))
	for i, h := range head {
		wd[i] = len(h)
	}
	for _, row := range table {
		for i := range row[:len(row)-1] {
			wd[i] = max(wd[i], utf8.RuneCountInString(row[i]))
		}
	}
	line := func(row []string) string {
		var b strings.Builder
		for i, c := range row[:len(row)-1] {
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", wd[i]-utf8.RuneCountInString(c)+2))
		}
		b.WriteString(row[len(row)-1])
		return strings.TrimRight(b.String(), " ")
	}
	fmt.Fprintln(w, bold(line(head)))
	for _, row := range table {
		fmt.Fprintln(w, line(row))
	}
	fmt.Fprintf(w, "%d ok, %d refused, %d skipped, %d failed in %.1fs\n", sum.OK, sum.Refused, sum.Skipped, sum.Failed, sum.Seconds)
}
