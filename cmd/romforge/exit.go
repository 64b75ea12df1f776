package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/romforge/romforge/internal/failure"
)

// Exit codes, documented in README.md.
const (
	exitOK       = 0
	exitFindings = 1 // a check found problems
	exitUsage    = 2 // the command line was wrong
	exitRefused  = 3 // refused for safety; nothing was written
	exitInvalid  = 4 // input invalid or corrupt
	exitIO       = 5 // network or device I/O failed
)

// exitCode maps any error to the documented exit codes.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, failure.ErrFindings):
		return exitFindings
	case errors.Is(err, failure.ErrUsage):
		return exitUsage
	case errors.Is(err, failure.ErrRefused):
		return exitRefused
	case errors.Is(err, failure.ErrInvalid):
		return exitInvalid
	case errors.Is(err, failure.ErrIO), errors.Is(err, context.DeadlineExceeded):
		return exitIO
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		return exitUsage
	case isCLIUsage(err):
		return exitUsage
	}
	return exitIO
}

// hint says what the user can do next for the common kinds of failure.
func hint(code int, err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "check the path"
	case errors.Is(err, fs.ErrPermission):
		return "check file permissions (or run 'romforge doctor')"
	case errors.Is(err, context.Canceled):
		return "interrupted; nothing more was done"
	}
	switch code {
	case exitRefused:
		return "nothing was written; fix the reason above or run with --dry-run to see the plan"
	case exitInvalid:
		return "the input is damaged or not what it claims to be; download it again or check the file"
	}
	return ""
}

// reportError prints err (as JSON on stdout with --json) and returns its exit code.
func reportError(stdout, stderr io.Writer, asJSON bool, err error) int {
	code := exitCode(err)
	if errors.Is(err, failure.ErrFindings) && !asJSON {
		// The command already printed its findings; the summary line is enough.
		fmt.Fprintf(stderr, "romforge: %v\n", err)
		return code
	}
	h := hint(code, err)
	if asJSON {
		enc := json.NewEncoder(stdout)
		_ = enc.Encode(map[string]any{"error": err.Error(), "exit_code": code, "hint": h})
		return code
	}
	fmt.Fprintf(stderr, "romforge: %v\n", err)
	if h != "" {
		fmt.Fprintf(stderr, "  → %s\n", h)
	}
	return code
}

// isCLIUsage recognises the command-line errors urfave/cli returns without a usage hook (missing
// required flags, unknown commands).
func isCLIUsage(err error) bool {
	m := err.Error()
	return strings.HasPrefix(m, "Required flag") || strings.HasPrefix(m, "Required flags") || strings.HasPrefix(m, "No help topic for")
}
