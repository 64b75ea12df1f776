package blockota

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/romforge/romforge/internal/failure"
)

// BlockSize is the block size of every block OTA.
const BlockSize = 4096

const (
	// MaxBlocks bounds block numbers: 2^26 blocks of 4 KiB is a 256 GiB partition.
	MaxBlocks = 1 << 26
	// maxRangeBlocks bounds the sum of all commands' block counts, so that a small hostile list cannot
	// make Apply sweep the same huge range millions of times. Real lists stay near twice the image.
	maxRangeBlocks = 16 * MaxBlocks
	// maxLine bounds one line of the list: a range set of 2^18 ranges, far more than any real image's
	// fragmentation, so a hostile line costs a few MiB of memory, not hundreds.
	maxLine = 4 << 20
	// maxCommands bounds the lines after the header (real incremental lists have tens of thousands).
	maxCommands = 1 << 20
)

// Error reports a malformed or unsupported transfer list. It satisfies errors.Is(err, failure.ErrInvalid).
type Error struct {
	Line int // 1-based line of the transfer list, 0 when not tied to one
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	s := "blockota: "
	if e.Line > 0 {
		s += fmt.Sprintf("transfer.list line %d: ", e.Line)
	}
	s += e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap matches failure.ErrInvalid and the cause.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{failure.ErrInvalid, e.Err}
	}
	return []error{failure.ErrInvalid}
}

// Range is the half-open block range [Start, End).
type Range struct{ Start, End int64 }

// RangeSet is a list of block ranges in the order the list gives them.
type RangeSet []Range

// Blocks is the number of blocks in the set (overlaps counted twice).
func (rs RangeSet) Blocks() int64 {
	var n int64
	for _, r := range rs {
		n += r.End - r.Start
	}
	return n
}

// String formats the set as the transfer list does: "N,a,b,c,d".
func (rs RangeSet) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(2 * len(rs)))
	for _, r := range rs {
		fmt.Fprintf(&b, ",%d,%d", r.Start, r.End)
	}
	return b.String()
}

// ParseRangeSet parses "N,a,b,…": N numbers forming N/2 non-empty ranges, each within MaxBlocks.
func ParseRangeSet(s string) (RangeSet, error) {
	count, rest, _ := strings.Cut(s, ",")
	n, err := strconv.ParseUint(count, 10, 32)
	if err != nil || n == 0 || n%2 != 0 {
		return nil, fmt.Errorf("range set %.40q: count %.40q is not a positive even number", s, count)
	}
	// Each number takes at least two bytes ("0,"), so a count the text cannot hold is refused first.
	if n > uint64(len(rest)+1)/2+1 {
		return nil, fmt.Errorf("range set %.40q: count %d larger than the numbers given", s, n)
	}
	rs := make(RangeSet, 0, n/2)
	for i := uint64(0); i < n; i += 2 {
		var a, b string
		var ok bool
		if a, rest, ok = strings.Cut(rest, ","); !ok {
			return nil, fmt.Errorf("range set %.40q: %d numbers given, count says %d", s, i+1, n)
		}
		b, rest, ok = strings.Cut(rest, ",")
		if ok != (i+2 < n) {
			return nil, fmt.Errorf("range set %.40q: number count does not match %d", s, n)
		}
		x, err1 := strconv.ParseInt(a, 10, 64)
		y, err2 := strconv.ParseInt(b, 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("range set %.40q: bad number in %.40q,%.40q", s, a, b)
		}
		if x < 0 || y <= x || y > MaxBlocks {
			return nil, fmt.Errorf("range set %.40q: range [%d,%d) is empty or beyond block %d", s, x, y, MaxBlocks)
		}
		rs = append(rs, Range{x, y})
	}
	return rs, nil
}

// Command is one line after the header.
type Command struct {
	Line   int      // 1-based line number
	Op     string   // new, zero, erase, or an incremental op (move, bsdiff, imgdiff, stash, free)
	Ranges RangeSet // target blocks (new, zero, erase only)
}

// TransferList is a parsed transfer list.
type TransferList struct {
	Version      int
	TotalBlocks  int64 // line 2: blocks the OTA writes (new + zero + patched)
	StashEntries int64 // v2+: stash slots needed at once
	MaxStash     int64 // v2+: most blocks stashed at once
	Commands     []Command
}

var incremental = map[string]bool{"move": true, "bsdiff": true, "imgdiff": true, "stash": true, "free": true}

// Parse reads a transfer list. Commands of incremental OTAs are kept (so Info can describe them) but
// not interpreted; Apply refuses them.
func Parse(r io.Reader) (*TransferList, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	tl := &TransferList{}
	line := 0
	next := func() (string, bool, error) {
		var sb strings.Builder
		for {
			chunk, err := br.ReadSlice('\n')
			sb.Write(chunk)
			if sb.Len() > maxLine {
				return "", false, &Error{Line: line + 1, Msg: fmt.Sprintf("line longer than %d bytes (starts %.40q)", maxLine, sb.String())}
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err == io.EOF && sb.Len() == 0 {
				return "", false, nil
			}
			if err != nil && err != io.EOF {
				return "", false, &Error{Line: line + 1, Msg: "reading", Err: err}
			}
			line++
			return strings.TrimRight(sb.String(), "\r\n"), true, nil
		}
	}
	header := func(what string, lo, hi int64) (int64, error) {
		s, ok, err := next()
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, &Error{Line: line + 1, Msg: fmt.Sprintf("missing %s (file truncated?)", what)}
		}
		v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || v < lo || v > hi {
			return 0, &Error{Line: line, Msg: fmt.Sprintf("%s %.40q is not a number in %d..%d", what, s, lo, hi)}
		}
		return v, nil
	}
	v, err := header("version", 1, 4)
	if err != nil {
		return nil, err
	}
	tl.Version = int(v)
	if tl.TotalBlocks, err = header("total block count", 0, maxRangeBlocks); err != nil {
		return nil, err
	}
	if tl.Version >= 2 {
		if tl.StashEntries, err = header("stash entry count", 0, 1<<31); err != nil {
			return nil, err
		}
		if tl.MaxStash, err = header("maximum stash blocks", 0, maxRangeBlocks); err != nil {
			return nil, err
		}
	}
	var sum int64
	for {
		s, ok, err := next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if strings.TrimSpace(s) == "" {
			continue
		}
		if len(tl.Commands) >= maxCommands {
			return nil, &Error{Line: line, Msg: fmt.Sprintf("more than %d commands", maxCommands)}
		}
		op, args, _ := strings.Cut(s, " ")
		c := Command{Line: line, Op: op}
		switch {
		case op == "new" || op == "zero" || op == "erase":
			rs, err := ParseRangeSet(strings.TrimSpace(args))
			if err != nil {
				return nil, &Error{Line: line, Msg: op, Err: err}
			}
			sum += rs.Blocks()
			if sum > maxRangeBlocks {
				return nil, &Error{Line: line, Msg: fmt.Sprintf("commands name more than %d blocks in total", int64(maxRangeBlocks))}
			}
			c.Ranges = rs
		case incremental[op]:
		default:
			return nil, &Error{Line: line, Msg: fmt.Sprintf("unknown command %.40q", op)}
		}
		tl.Commands = append(tl.Commands, c)
	}
	if n := tl.blocks("new"); n > tl.TotalBlocks {
		return nil, &Error{Line: 2, Msg: fmt.Sprintf("total block count %d is less than the %d blocks of new data the commands need", tl.TotalBlocks, n)}
	}
	return tl, nil
}

func (tl *TransferList) blocks(op string) int64 {
	var n int64
	for _, c := range tl.Commands {
		if c.Op == op {
			n += c.Ranges.Blocks()
		}
	}
	return n
}

// NewDataSize is how many bytes of new data the list consumes.
func (tl *TransferList) NewDataSize() int64 { return tl.blocks("new") * BlockSize }

// ImageBlocks is the size of the image in blocks: the end of the highest range any command names.
func (tl *TransferList) ImageBlocks() int64 {
	var n int64
	for _, c := range tl.Commands {
		for _, r := range c.Ranges {
			n = max(n, r.End)
		}
	}
	return n
}

// CheckFull returns an error naming the first command that needs the old partition.
func (tl *TransferList) CheckFull() error {
	for _, c := range tl.Commands {
		if incremental[c.Op] {
			return &Error{Line: c.Line, Msg: fmt.Sprintf("%q belongs to an incremental OTA, which needs the old partition; only full block OTAs can be unpacked", c.Op)}
		}
	}
	return nil
}

// Info is a JSON-friendly summary for `romforge inspect`.
type Info struct {
	Format         string         `json:"format"`
	Version        int            `json:"version"`
	TotalBlocks    int64          `json:"total_blocks"`
	StashEntries   int64          `json:"stash_entries"`
	MaxStashBlocks int64          `json:"max_stash_blocks"`
	ImageBlocks    int64          `json:"image_blocks"`
	ImageSize      int64          `json:"image_size"`
	NewBlocks      int64          `json:"new_blocks"`
	ZeroBlocks     int64          `json:"zero_blocks"`
	EraseBlocks    int64          `json:"erase_blocks"`
	Commands       map[string]int `json:"commands"`
	Incremental    bool           `json:"incremental"`
}

// Info summarises the list.
func (tl *TransferList) Info() Info {
	in := Info{Format: "block_ota", Version: tl.Version, TotalBlocks: tl.TotalBlocks, StashEntries: tl.StashEntries,
		MaxStashBlocks: tl.MaxStash, ImageBlocks: tl.ImageBlocks(), NewBlocks: tl.blocks("new"),
		ZeroBlocks: tl.blocks("zero"), EraseBlocks: tl.blocks("erase"), Commands: map[string]int{}}
	in.ImageSize = in.ImageBlocks * BlockSize
	for _, c := range tl.Commands {
		in.Commands[c.Op]++
		in.Incremental = in.Incremental || incremental[c.Op]
	}
	return in
}

// WriteTo writes the list in the transfer.list text format.
func (tl *TransferList) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriter(cw)
	fmt.Fprintf(bw, "%d\n%d\n", tl.Version, tl.TotalBlocks)
	if tl.Version >= 2 {
		fmt.Fprintf(bw, "%d\n%d\n", tl.StashEntries, tl.MaxStash)
	}
	for _, c := range tl.Commands {
		fmt.Fprintf(bw, "%s %s\n", c.Op, c.Ranges)
	}
	err := bw.Flush()
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
