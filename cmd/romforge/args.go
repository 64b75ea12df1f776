package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// normalizeArgs lets flags stand anywhere, as git and fastboot users expect. urfave/cli v2 stops parsing
// flags at the first positional argument and reads global flags only before the command name, so this
// moves every flag to the level that defines it: global flags before the command, each command's flags
// right after its own name, positionals last. "--" ends flags; everything after it stays positional.
func normalizeArgs(app *cli.App, args []string) ([]string, error) {
	if len(args) == 0 {
		return args, nil
	}
	type level struct {
		name  string
		flags []cli.Flag
		subs  []*cli.Command
		args  []string // the flags (and values) that belong to this level
	}
	levels := []*level{{flags: app.Flags, subs: app.Commands}}
	var positional []string
	rest := args[1:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			positional = append(positional, rest[i:]...)
			break
		}
		if len(a) > 1 && a[0] == '-' {
			name := strings.TrimLeft(a, "-")
			name, _, hasValue := strings.Cut(name, "=")
			// Find the deepest level that defines the flag; unknown flags stay with the deepest level
			// so urfave/cli reports them there.
			owner, f := levels[len(levels)-1], cli.Flag(nil)
			for j := len(levels) - 1; j >= 0; j-- {
				if ff := findFlag(levels[j].flags, name); ff != nil {
					owner, f = levels[j], ff
					break
				}
			}
			if f != nil && isSliceFlag(f) {
				// urfave/cli refuses a repeatable flag given by both its names ("-s a --serial b"):
				// one spelling keeps every value.
				a = "--" + f.Names()[0] + a[strings.Index(a, name)+len(name):]
			}
			owner.args = append(owner.args, a)
			if f != nil && !hasValue && takesValue(f) && i+1 < len(rest) {
				i++
				owner.args = append(owner.args, rest[i])
			}
			continue
		}
		// A command name, while no positional argument has been seen yet.
		if len(positional) == 0 {
			if sub := findCommand(levels[len(levels)-1].subs, a); sub != nil {
				levels = append(levels, &level{name: a, flags: sub.Flags, subs: sub.Subcommands})
				continue
			}
		}
		positional = append(positional, a)
	}
	out := []string{args[0]}
	for _, l := range levels {
		if l.name != "" {
			out = append(out, l.name)
		}
		out = append(out, l.args...)
	}
	if len(positional) > 0 && positional[0] != "--" && strings.HasPrefix(positional[0], "-") {
		out = append(out, "--")
	}
	return append(out, positional...), nil
}

func findFlag(flags []cli.Flag, name string) cli.Flag {
	if name == "help" || name == "h" {
		return cli.HelpFlag
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func isSliceFlag(f cli.Flag) bool {
	switch f.(type) {
	case *cli.StringSliceFlag, *cli.IntSliceFlag, *cli.Int64SliceFlag, *cli.UintSliceFlag, *cli.Uint64SliceFlag, *cli.Float64SliceFlag:
		return true
	}
	return false
}

func takesValue(f cli.Flag) bool {
	if d, ok := f.(cli.DocGenerationFlag); ok {
		return d.TakesValue()
	}
	return true
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// nameList reads a repeatable flag whose values are names (partitions, devices): the one list convention
// is to repeat the flag, and since a name never holds a comma, a comma list is taken too
// (--partitions system,vendor ≡ --partitions system --partitions vendor). Flags whose values may hold
// commas (--set, --prop) are repeated only.
func nameList(c *cli.Context, flag string) []string {
	var out []string
	for _, v := range c.StringSlice(flag) {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				out = append(out, n)
			}
		}
	}
	return out
}
