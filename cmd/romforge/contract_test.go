package main

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestUsageErrorsNameTheirCommand: a bad flag of a subcommand points to that subcommand's help, with
// its parents.
func TestUsageErrorsNameTheirCommand(t *testing.T) {
	for _, args := range [][]string{{"avb", "verify", "--bogus"}, {"sparse", "to-raw", "--bogus"}, {"build", "--bogus"}} {
		code, out, errs := runCLI(t, args...)
		want := "see 'romforge " + strings.Join(args[:len(args)-1], " ") + " --help'"
		if code != 2 || !strings.Contains(out+errs, want) {
			t.Errorf("%v: exit %d, output %q; want exit 2 and %q", args, code, out+errs, want)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	code, out, errs := runCLI(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "romforge version ") {
		t.Fatalf("--version: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestShortSIsOnlySerial: -s means --serial (as fastboot -s) and nothing else.
func TestShortSIsOnlySerial(t *testing.T) {
	var walk func(path string, cs []*cli.Command)
	serials := 0
	walk = func(path string, cs []*cli.Command) {
		for _, c := range cs {
			for _, f := range c.Flags {
				names := f.Names()
				for _, n := range names[1:] {
					if n == "s" {
						if names[0] != "serial" {
							t.Errorf("%s %s: -s is an alias of --%s; -s means --serial only", path, c.Name, names[0])
						}
						serials++
					}
				}
			}
			walk(path+" "+c.Name, c.Subcommands)
		}
	}
	walk("romforge", newApp(nil, nil, nil).Commands)
	if serials == 0 {
		t.Fatal("no command has -s for --serial: the walk saw no flags")
	}
}

// TestHelpExamples: every command's help has EXAMPLES, each naming that command and only flags it has.
func TestHelpExamples(t *testing.T) {
	app := newApp(nil, nil, nil)
	global := map[string]bool{"version": true, "help": true}
	for _, f := range globalFlags {
		for _, n := range f.Names() {
			global[n] = true
		}
	}
	var walk func(prefix string, cs []*cli.Command)
	walk = func(prefix string, cs []*cli.Command) {
		for _, c := range cs {
			if c.Name == "help" {
				continue
			}
			name := strings.TrimSpace(prefix + " " + c.Name)
			ex := examples[name]
			if len(ex) == 0 {
				t.Errorf("%s: no EXAMPLES in its help", name)
			}
			if !strings.Contains(c.CustomHelpTemplate, "EXAMPLES:") {
				t.Errorf("%s: help template lacks EXAMPLES", name)
			}
			for _, e := range ex {
				words := strings.Fields(strings.ReplaceAll(e, "'", ""))
				if words[0] != "romforge" {
					t.Errorf("%s: example %q does not start with romforge", name, e)
					continue
				}
				// The example runs this command or one of its subcommands.
				target, cur := (*cli.Command)(nil), app.Commands
				var path []string
				for _, w := range words[1:] {
					sub := findCommand(cur, w)
					if sub == nil {
						break
					}
					target, cur, path = sub, sub.Subcommands, append(path, sub.Name)
				}
				if target == nil || !strings.HasPrefix(strings.Join(path, " ")+" ", name+" ") {
					t.Errorf("%s: example %q runs %q", name, e, strings.Join(path, " "))
					continue
				}
				flags := map[string]bool{}
				for _, f := range target.Flags {
					for _, n := range f.Names() {
						flags[n] = true
					}
				}
				for _, w := range words {
					if strings.HasPrefix(w, "-") && w != "-" {
						n, _, _ := strings.Cut(strings.TrimLeft(w, "-"), "=")
						if !flags[n] && !global[n] {
							t.Errorf("%s: example %q uses %s, which %s does not have", name, e, w, strings.Join(path, " "))
						}
					}
				}
			}
			walk(name, c.Subcommands)
		}
	}
	walk("", app.Commands)
}
