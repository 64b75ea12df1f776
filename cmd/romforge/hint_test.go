package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/internal/failure"
)

var (
	quotedCommand = regexp.MustCompile(`'romforge([^']*)'`)
	flagToken     = regexp.MustCompile(`(^|[\s(])--([a-z][a-z0-9-]*)`)
)

// allCommands walks the command tree: every command and subcommand with its path ("fs build").
func allCommands(app *cli.App) map[string]*cli.Command {
	out := map[string]*cli.Command{}
	var walk func(prefix string, cs []*cli.Command)
	walk = func(prefix string, cs []*cli.Command) {
		for _, c := range cs {
			p := strings.TrimSpace(prefix + " " + c.Name)
			out[p] = c
			walk(p, c.Subcommands)
		}
	}
	walk("", app.Commands)
	return out
}

// resolve finds the command a quoted "romforge X Y ARGS --flags" names: the longest known command path.
func resolve(cmds map[string]*cli.Command, words []string) (*cli.Command, string) {
	for n := len(words); n > 0; n-- {
		p := strings.Join(words[:n], " ")
		if c, ok := cmds[p]; ok {
			return c, p
		}
	}
	return nil, ""
}

// checkHint fails when a hint is empty or names a command or flag that does not exist: flags inside a
// quoted 'romforge X …' must be X's (or global), flags outside must belong to the failing command.
func checkHint(t *testing.T, cmds map[string]*cli.Command, failing *cli.Command, what, h string) {
	t.Helper()
	for _, p := range hintProblems(cmds, failing, h) {
		t.Errorf("%s: %s", what, p)
	}
}

func hintProblems(cmds map[string]*cli.Command, failing *cli.Command, h string) []string {
	if strings.TrimSpace(h) == "" {
		return []string{"empty hint"}
	}
	var out []string
	hasFlag := func(c *cli.Command, name string) bool {
		if findFlag(globalFlags, name) != nil {
			return true
		}
		return c != nil && findFlag(c.Flags, name) != nil
	}
	for _, m := range quotedCommand.FindAllStringSubmatch(h, -1) {
		var words []string
		for _, w := range strings.Fields(m[1]) {
			if strings.HasPrefix(w, "-") || strings.ToUpper(w) == w {
				break // flags and placeholders (TARGET, NAME) end the command path
			}
			words = append(words, w)
		}
		c, _ := resolve(cmds, words)
		if len(words) > 0 && c == nil {
			out = append(out, fmt.Sprintf("hint %q names 'romforge %s', which is no command", h, strings.Join(words, " ")))
			continue
		}
		for _, f := range flagToken.FindAllStringSubmatch(m[1], -1) {
			if f[2] != "help" && !hasFlag(c, f[2]) {
				out = append(out, fmt.Sprintf("hint %q gives --%s to 'romforge %s', which has no such flag", h, f[2], strings.Join(words, " ")))
			}
		}
	}
	rest := quotedCommand.ReplaceAllString(h, "")
	for _, f := range flagToken.FindAllStringSubmatch(rest, -1) {
		if f[2] != "help" && !hasFlag(failing, f[2]) {
			name := "(no command)"
			if failing != nil {
				name = failing.Name
			}
			out = append(out, fmt.Sprintf("hint %q suggests --%s, which %s does not have", h, f[2], name))
		}
	}
	return out
}

// Every kind of error, for every command, gets a hint that is non-empty and names only flags and commands
// that exist (issue 19 item 9: 52 kinds had "hint": "", and build was told to use --dry-run).
func TestHintsForEveryKindAndCommand(t *testing.T) {
	app := newApp(nil, nil, nil)
	cmds := allCommands(app)
	if len(cmds) < 20 {
		t.Fatalf("only %d commands found", len(cmds))
	}
	base := errors.New("something failed")
	kinds := map[string]error{
		"findings":          failure.Kinded(failure.ErrFindings, base),
		"usage":             failure.Kinded(failure.ErrUsage, base),
		"refused":           failure.Kinded(failure.ErrRefused, base),
		"invalid":           failure.Kinded(failure.ErrInvalid, base),
		"io":                failure.Kinded(failure.ErrIO, base),
		"unknown":           base,
		"canceled":          fmt.Errorf("x: %w", context.Canceled),
		"deadline":          fmt.Errorf("x: %w", context.DeadlineExceeded),
		"not exist":         &fs.PathError{Op: "open", Path: "/nope", Err: fs.ErrNotExist},
		"permission":        &fs.PathError{Op: "open", Path: "/root/x", Err: fs.ErrPermission},
		"exist":             &fs.PathError{Op: "mkdir", Path: "/x", Err: fs.ErrExist},
		"disk full":         &fs.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC},
		"cli required":      errors.New(`Required flag "output" not set`),
		"unknown device":    failure.Kinded(failure.ErrUsage, errors.New(`unknown device "foo"`)),
		"interrupted kinds": fmt.Errorf("%w (interrupted: %w)", failure.Kinded(failure.ErrIO, base), context.Canceled),
	}
	paths := []string{""}
	for p := range cmds {
		paths = append(paths, p)
	}
	n := 0
	for _, p := range paths {
		cmd := cmds[p]
		for kname, err := range kinds {
			code := exitCode(err)
			h := hintFor(cmd, p, code, err)
			what := fmt.Sprintf("romforge %s, %s (exit %d)", p, kname, code)
			checkHint(t, cmds, cmd, what, h)
			n++
			// The hint must fit the exit code: a refusal says nothing was written, an interruption says so.
			switch code {
			case exitRefused:
				if !strings.Contains(h, "nothing was written") {
					t.Errorf("%s: refusal hint %q does not say nothing was written", what, h)
				}
			case exitInterrupted:
				if !strings.Contains(h, "interrupted") {
					t.Errorf("%s: hint %q does not say it was interrupted", what, h)
				}
			}
		}
	}
	t.Logf("%d command × error-kind hints checked", n)
}

// The checker itself must catch wrong hints, not merely pass.
func TestCheckHintCatchesWrongFlags(t *testing.T) {
	app := newApp(nil, nil, nil)
	cmds := allCommands(app)
	for _, tc := range []struct {
		cmd, hint string
		bad       bool
	}{
		{"build", "run with --dry-run to see the plan", true},
		{"flash", "run with --dry-run to see the plan", false},
		{"build", "run 'romforge flash BUNDLE --dry-run'", false},
		{"build", "run 'romforge frobnicate'", true},
		{"audit", "fix it with 'romforge patch TARGET --set NAME'", false},
		{"audit", "fix it with 'romforge audit TARGET --bogus'", true},
		{"unpack", "", true},
	} {
		if got := hintProblems(cmds, cmds[tc.cmd], tc.hint); (len(got) > 0) != tc.bad {
			t.Errorf("%s %q: problems %q, want bad=%v", tc.cmd, tc.hint, got, tc.bad)
		}
	}
}

// Real failing command lines, each with --json: the error document carries the exit code's hint, never
// an empty one.
func TestHintsOfRealFailures(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.bin")
	os.WriteFile(garbage, []byte(strings.Repeat("not a rom ", 500)), 0o644)
	empty := filepath.Join(dir, "empty.img")
	os.WriteFile(empty, nil, 0o644)
	trunc := filepath.Join(dir, "trunc.zip")
	os.WriteFile(trunc, []byte("PK\x03\x04\x14\x00\x00\x00\x08\x00broken"), 0o644)
	missing := filepath.Join(dir, "missing.zip")
	nonEmpty := filepath.Join(dir, "full")
	os.MkdirAll(nonEmpty, 0o755)
	os.WriteFile(filepath.Join(nonEmpty, "x"), []byte("x"), 0o644)
	out := filepath.Join(dir, "out")

	cases := [][]string{
		{"frobnicate"},
		{"unpack"},
		{"unpack", garbage, "-o", out},
		{"unpack", trunc, "-o", out},
		{"unpack", missing, "-o", out},
		{"unpack", garbage},
		{"unpack", "--bogus", garbage, "-o", out},
		{"inspect", missing},
		{"inspect", empty},
		{"sparse", "to-raw", garbage, filepath.Join(dir, "raw.img")},
		{"sparse", "to-sparse", missing, filepath.Join(dir, "s.img")},
		{"fs", "ls", garbage},
		{"fs", "extract", garbage, filepath.Join(dir, "tree")},
		{"fs", "build", missing, filepath.Join(dir, "fs.img")},
		{"boot", "unpack", garbage, "-o", filepath.Join(dir, "boot")},
		{"boot", "repack", dir, "-o", filepath.Join(dir, "b.img")},
		{"avb", "verify", garbage},
		{"vbmeta", "patch", garbage, "-o", filepath.Join(dir, "vb.img")},
		{"devices", "show", "no-such-phone-xyz"},
		{"build", "--device", "no-such-phone-xyz", "--input", garbage, "-o", out},
		{"build", "--device", "armani", "--input", garbage, "-o", out},
		{"build", "--device", "armani", "--input", garbage, "-o", nonEmpty},
		{"build", "--device", "armani", "--input", missing, "-o", out},
		{"flash", missing, "--yes"},
		{"flash", garbage, "--serial", "tcp:127.0.0.1:1", "--yes"},
		{"patch", dir, "--set", "no-such-set"},
		{"patches", "show", "no-such-set"},
		{"audit", missing},
		{"fetch", "-o", out}, // (a refused connection retries for many seconds: not here)
		{"emulate"},
		{"fastboot", "getvar", "product", "--serial", "tcp:127.0.0.1:1"},
		{"completion", "tcsh"},
	}
	app := newApp(nil, nil, nil)
	cmds := allCommands(app)
	seen := map[int]bool{}
	for _, args := range cases {
		code, stdout, stderr := runCLI(t, append([]string{"--json"}, args...)...)
		what := strings.Join(args, " ")
		if code == 0 {
			t.Errorf("%s: succeeded, expected a failure", what)
			continue
		}
		var doc struct {
			Error    string `json:"error"`
			ExitCode *int   `json:"exit_code"`
			Hint     string `json:"hint"`
		}
		// The error document is the last JSON line on stdout (or on stderr after a printed result).
		lines := strings.Split(strings.TrimSpace(stdout+"\n"+stderr), "\n")
		found := false
		for i := len(lines) - 1; i >= 0 && !found; i-- {
			doc.ExitCode = nil
			if json.Unmarshal([]byte(lines[i]), &doc) == nil && doc.Error != "" && doc.ExitCode != nil {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: exit %d without a JSON error document\nstdout: %s\nstderr: %s", what, code, stdout, stderr)
			continue
		}
		if *doc.ExitCode != code {
			t.Errorf("%s: exit %d but the document says %d", what, code, *doc.ExitCode)
		}
		if len(doc.Error) > 4096 {
			t.Errorf("%s: error message of %d bytes", what, len(doc.Error))
		}
		norm, _ := normalizeArgs(app, append([]string{"romforge"}, args...))
		c, _ := commandOf(app, norm)
		checkHint(t, cmds, c, what, doc.Hint)
		t.Logf("exit %d %s → %s", code, what, doc.Hint)
		seen[code] = true
	}
	for _, code := range []int{exitUsage, exitInvalid, exitIO} {
		if !seen[code] {
			t.Errorf("no case produced exit %d: the table no longer covers it", code)
		}
	}
}
