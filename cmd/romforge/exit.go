package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/internal/failure"
)

// Exit codes, documented in README.md.
const (
	exitOK          = 0
	exitFindings    = 1   // a check found problems
	exitUsage       = 2   // the command line was wrong
	exitRefused     = 3   // refused for safety; nothing was written
	exitInvalid     = 4   // input invalid or corrupt
	exitIO          = 5   // network or device I/O failed
	exitInterrupted = 130 // Ctrl-C or SIGTERM (128 + SIGINT, as shells report it); temporary outputs removed
)

// exitCode maps any error to the documented exit codes.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitInterrupted
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

// hintFor says what the user can do next. Every exit code but 0 gets one; cmd is the command that failed
// (nil when the command line named none), so a hint never suggests a flag that command does not have.
func hintFor(cmd *cli.Command, path string, code int, err error) string {
	name := strings.TrimSpace("romforge " + path)
	has := func(flag string) bool { return cmd != nil && findFlag(cmd.Flags, flag) != nil }
	switch {
	case code == exitInterrupted:
		switch {
		case has("resume"):
			return "interrupted; the phone may hold some new partitions already: run again with --resume to continue"
		case cmd != nil && cmd.Name == "patch":
			return "interrupted; a folder patched in place may be partly patched (an image output was not kept): run the same command again"
		}
		return "interrupted; no partial output was kept: run the same command again"
	case errors.Is(err, fs.ErrNotExist) && code == exitInvalid:
		return "a file the input needs is missing (named above): check that the folder or archive is complete"
	case errors.Is(err, fs.ErrNotExist):
		return "check the path: it does not exist"
	case errors.Is(err, fs.ErrPermission):
		return "check file permissions (for USB devices run 'romforge doctor')"
	case errors.Is(err, fs.ErrExist):
		return "the output is in the way: choose another output path or remove it"
	case errors.Is(err, syscall.ENOSPC):
		return "the disk is full: free space or choose an output on another disk ('romforge doctor' shows free space)"
	case errors.Is(err, context.DeadlineExceeded):
		return "the device or server did not answer in time: check the cable or network and run again"
	}
	switch code {
	case exitFindings:
		switch {
		case cmd != nil && cmd.Name == "audit":
			return "the findings are listed above: remove them with 'romforge patch TARGET --set NAME', then audit again"
		case cmd != nil && cmd.Name == "doctor":
			return "apply the fix printed under each problem, then run 'romforge doctor' again"
		case path == "build":
			return "the listed findings remain in the bundle: add patch sets with --set ('romforge patches list'), or accept them with a reason in your own set"
		case path == "patch":
			return "what is left is listed above: neutralize it with a step in your own set, or accept it with a reason"
		case path == "avb verify":
			return "the image does not match its vbmeta (changed, or signed with another key): use an unmodified copy or sign it again"
		}
		return "a check found problems (listed above): fix them and run again"
	case exitUsage:
		switch msg := err.Error(); {
		case strings.Contains(msg, "unknown device") || strings.Contains(msg, "no device"):
			return "run 'romforge devices' to list the known devices"
		case strings.Contains(msg, "unknown patch set"):
			return "run 'romforge patches list' for the built-in sets, or give the path of your own set's YAML file"
		}
		if cmd == nil {
			return "run 'romforge --help' for the commands"
		}
		return "run '" + name + " --help' for its flags and arguments"
	case exitRefused:
		if has("dry-run") {
			return "nothing was written; fix the reason above, or run with --dry-run to see the plan"
		}
		return "nothing was written; fix the reason above and run again"
	case exitInvalid:
		return "the input is damaged or not what it claims to be; download it again or check the file ('romforge inspect FILE' shows what it is)"
	case exitIO:
		return "a read or write failed (network, USB or disk): check the connection and free space ('romforge doctor'), then run again"
	}
	return "run '" + name + " --help'"
}

// reportError prints err (as JSON on stdout with --json) with its hint and returns its exit code.
func reportError(stdout, stderr io.Writer, asJSON bool, cmd *cli.Command, path string, err error) int {
	code := exitCode(err)
	if errors.Is(err, failure.ErrFindings) && !asJSON {
		// The command already printed its findings; the summary line is enough.
		fmt.Fprintf(stderr, "romforge: %v\n", err)
		return code
	}
	h := hintFor(cmd, path, code, err)
	if asJSON {
		doc := map[string]any{"error": err.Error(), "exit_code": code, "hint": h}
		if t, ok := stdout.(*stdoutTracker); ok && t.wrote {
			// The result is on stdout already (audit findings, a batch summary): the error is an event.
			doc["event"] = "error"
			b, _ := json.Marshal(doc)
			stderr.Write(append(b, '\n'))
			return code
		}
		_ = json.NewEncoder(stdout).Encode(doc)
		return code
	}
	fmt.Fprintf(stderr, "romforge: %v\n", err)
	fmt.Fprintf(stderr, "  → %s\n", h)
	return code
}

// commandOf returns the command (or subcommand) that normalized args run, nil when there is none, and its
// path ("fs build").
func commandOf(app *cli.App, args []string) (*cli.Command, string) {
	var cur *cli.Command
	var path []string
	subs := app.Commands
	for _, a := range args[min(1, len(args)):] {
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		c := findCommand(subs, a)
		if c == nil {
			// A flag's value or a positional argument: commands come first after normalizeArgs, so keep
			// looking only past flag values.
			continue
		}
		cur, subs = c, c.Subcommands
		path = append(path, c.Name)
	}
	return cur, strings.Join(path, " ")
}

// isCLIUsage recognises the command-line errors urfave/cli returns without a usage hook (missing
// required flags, unknown commands).
func isCLIUsage(err error) bool {
	m := err.Error()
	return strings.HasPrefix(m, "Required flag") || strings.HasPrefix(m, "Required flags") || strings.HasPrefix(m, "No help topic for")
}
