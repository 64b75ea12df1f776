package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/internal/failure"
)

// registry holds every command; each cmd_<verb>.go registers its own in init so that adding a command
// never edits a shared file.
var registry []*cli.Command

func register(c *cli.Command) { registry = append(registry, c) }

func init() {
	// --version without urfave/cli's -v alias, which is --verbose here.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version and exit (romforge version --json for details)"}
}

var globalFlags = []cli.Flag{
	&cli.BoolFlag{Name: "json", Usage: "machine-readable output on stdout (logs and progress go to stderr)"},
	&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only results and errors"},
	&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print more detail"},
	&cli.BoolFlag{Name: "no-color", Usage: "plain output without colors (also when NO_COLOR is set)"},
	&cli.StringFlag{Name: "cache-dir", Usage: "cache directory (default $XDG_CACHE_HOME/romforge or ~/.cache/romforge)"},
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	cmds := append([]*cli.Command(nil), registry...)
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })
	app := &cli.App{
		Name:                   "romforge",
		Usage:                  "fetch, unpack, harden, repack and flash community Android ROMs",
		Version:                version,
		Flags:                  globalFlags,
		Commands:               cmds,
		Reader:                 stdin,
		Writer:                 stdout,
		ErrWriter:              stderr,
		EnableBashCompletion:   true,
		UseShortOptionHandling: false,
		// --prop k:a,b and --set values may contain commas: repeat the flag instead of splitting.
		DisableSliceFlagSeparator: true,
		ExitErrHandler:            func(*cli.Context, error) {}, // run() maps errors to exit codes
		OnUsageError:              usageError,
	}
	var setUsage func([]*cli.Command)
	setUsage = func(cs []*cli.Command) {
		for _, c := range cs {
			if c.OnUsageError == nil {
				c.OnUsageError = usageError
			}
			setUsage(c.Subcommands)
		}
	}
	setUsage(app.Commands)
	addExamples("", app.Commands)
	return app
}

func usageError(c *cli.Context, err error, _ bool) error {
	return failure.Kinded(failure.ErrUsage, fmt.Errorf("%w (see '%s --help')", err, commandPath(c)))
}

// commandPath is the full command line name of c ("romforge avb verify"): urfave/cli's FullName drops
// the parents when the error comes from parsing a subcommand's flags.
func commandPath(c *cli.Context) string {
	var names []string
	for _, l := range c.Lineage() {
		if l.Command != nil && l.Command.Name != "" {
			names = append([]string{l.Command.Name}, names...)
		}
	}
	names = dedupeAdjacent(names)
	if len(names) == 0 || names[0] != "romforge" {
		names = append([]string{"romforge"}, names...)
	}
	return strings.Join(names, " ")
}

// dedupeAdjacent drops a name repeated by consecutive contexts of the same command.
func dedupeAdjacent(s []string) []string {
	var out []string
	for _, n := range s {
		if len(out) == 0 || out[len(out)-1] != n {
			out = append(out, n)
		}
	}
	return out
}

// run is the whole program, with its streams injected so tests can run it in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// With --json stdout carries exactly one document: an error after a printed result goes to stderr.
	stdout = &stdoutTracker{w: stdout}
	app := newApp(stdin, stdout, stderr)
	norm, err := normalizeArgs(app, args)
	if err == nil {
		err = app.RunContext(ctx, norm)
	}
	if err == nil {
		return 0
	}
	if ctx.Err() != nil && !errors.Is(err, context.Canceled) {
		// Interrupted: whatever the command failed with on its way out (a closed file, a cut
		// connection) follows from the interruption, which is what the exit code reports.
		err = fmt.Errorf("%w (interrupted: %w)", err, context.Canceled)
	}
	cmd, path := commandOf(app, norm)
	return reportError(stdout, stderr, wantsJSON(args), cmd, path, err)
}

// wantsJSON reports whether --json appears among the flags (before any "--").
func wantsJSON(args []string) bool {
	for _, a := range args[1:] {
		if a == "--" {
			break
		}
		if a == "--json" || a == "-json" || a == "--json=true" {
			return true
		}
	}
	return false
}

// env is what every command needs from the global flags.
type env struct {
	ctx     context.Context
	stdout  io.Writer
	stderr  io.Writer
	stdin   io.Reader
	json    bool
	quiet   bool
	verbose bool
	color   bool
	cache   string
}

func envOf(c *cli.Context) *env {
	e := &env{
		ctx:     c.Context,
		stdout:  c.App.Writer,
		stderr:  c.App.ErrWriter,
		stdin:   c.App.Reader,
		json:    c.Bool("json"),
		quiet:   c.Bool("quiet"),
		verbose: c.Bool("verbose"),
		color:   !c.Bool("no-color") && os.Getenv("NO_COLOR") == "" && isTerminal(c.App.ErrWriter),
		cache:   c.String("cache-dir"),
	}
	if e.ctx == nil {
		e.ctx = context.Background()
	}
	if e.cache == "" {
		e.cache = defaultCacheDir()
	}
	return e
}

func defaultCacheDir() string {
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "romforge")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "romforge")
	}
	return filepath.Join(os.TempDir(), "romforge-cache")
}

// usagef returns a usage error (exit 2).
func usagef(format string, args ...any) error {
	return failure.Kinded(failure.ErrUsage, fmt.Errorf(format, args...))
}

// needArgs checks the number of positional arguments.
func needArgs(c *cli.Context, min, max int, what string) error {
	n := c.Args().Len()
	if n < min || (max >= 0 && n > max) {
		return usagef("%s: expected %s (see 'romforge %s --help')", c.Command.FullName(), what, c.Command.FullName())
	}
	return nil
}

// stdoutTracker remembers whether a command wrote its result, so an error that follows it does not add a
// second JSON document to stdout.
type stdoutTracker struct {
	w     io.Writer
	wrote bool
}

func (t *stdoutTracker) Write(p []byte) (int, error) {
	if len(p) > 0 {
		t.wrote = true
	}
	return t.w.Write(p)
}
