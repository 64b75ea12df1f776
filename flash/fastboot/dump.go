package fastboot

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/romforge/romforge/internal/failure"
)

// A getvar all transcript is a few KiB; these bound what a file pointed at by mistake (or on purpose)
// can cost.
const (
	maxDumpBytes = 4 << 20
	maxDumpLine  = 64 << 10
	maxDumpVars  = 100000
)

// ErrNotDump says a file holds no getvar all answers.
var ErrNotDump = failure.Kinded(failure.ErrInvalid, errors.New("not a getvar all transcript: save the output of 'fastboot getvar all 2>&1' (or 'romforge fastboot getvar all [--json]') with the phone in its bootloader"))

// ParseGetvarDump reads a saved getvar all: the AOSP client's transcript ("(bootloader) name: value"
// lines, with its "all:" and "Finished." lines), romforge's own "name: value" lines, or its --json
// object. Lines that are not variables are skipped.
func ParseGetvarDump(r io.Reader) (map[string]string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxDumpBytes+1))
	if err != nil {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("reading the getvar transcript: %w", err))
	}
	if len(b) > maxDumpBytes {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("the getvar transcript is over %d bytes; a real one is a few KiB: %w", maxDumpBytes, ErrNotDump))
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var vars map[string]string
		if err := json.Unmarshal(t, &vars); err != nil {
			return nil, fmt.Errorf("%w (JSON: %v)", ErrNotDump, err)
		}
		if len(vars) == 0 || len(vars) > maxDumpVars {
			return nil, ErrNotDump
		}
		return vars, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxDumpLine)
	var lines []string
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		rest, tagged := strings.CutPrefix(l, "(bootloader)")
		if tagged {
			l = strings.TrimSpace(rest)
		}
		// The client's own lines, not the phone's answers.
		if l == "" || strings.HasPrefix(l, "all:") || strings.HasPrefix(l, "Finished.") || strings.HasPrefix(l, "OKAY") || strings.HasPrefix(l, "getvar:all") {
			continue
		}
		lines = append(lines, l)
		if len(lines) > maxDumpVars {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("the getvar transcript has over %d lines: %w", maxDumpVars, ErrNotDump))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w (a line over %d bytes)", ErrNotDump, maxDumpLine)
	}
	vars := ParseVarLines(lines)
	if len(vars) == 0 {
		return nil, ErrNotDump
	}
	return vars, nil
}
