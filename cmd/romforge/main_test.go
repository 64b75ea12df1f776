package main

import (
	"bytes"
	"context"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/urfave/cli/v2"
)

// TestMain lets testscript scripts run "romforge" in-process (the same run() main uses).
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"romforge": func() { os.Exit(run(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script"})
}

// runCLI runs romforge in-process and returns exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"romforge"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestNormalizeArgs(t *testing.T) {
	app := &cli.App{
		Flags: globalFlags,
		Commands: []*cli.Command{
			{Name: "unpack", Flags: []cli.Flag{&cli.StringFlag{Name: "output", Aliases: []string{"o"}}, &cli.BoolFlag{Name: "force"}}},
			{Name: "devices", Subcommands: []*cli.Command{{Name: "show"}}},
		},
	}
	cases := []struct{ in, want string }{
		{"unpack rom.zip -o out", "unpack -o out rom.zip"},
		{"unpack -o out rom.zip", "unpack -o out rom.zip"},
		{"unpack rom.zip --json -o=out --force", "--json unpack -o=out --force rom.zip"},
		{"devices --json", "--json devices"},
		{"--json devices show redmi 1s", "--json devices show redmi 1s"},
		{"devices show redmi --quiet 1s", "--quiet devices show redmi 1s"},
		{"unpack -o out -- -weird.zip --force", "unpack -o out -- -weird.zip --force"},
		{"unpack --bogus rom.zip", "unpack --bogus rom.zip"},
		{"unpack rom.zip --cache-dir /c", "--cache-dir /c unpack rom.zip"},
	}
	for _, tc := range cases {
		got, err := normalizeArgs(app, append([]string{"romforge"}, strings.Fields(tc.in)...))
		if err != nil {
			t.Fatal(err)
		}
		want := append([]string{"romforge"}, strings.Fields(tc.want)...)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q → %q, want %q", tc.in, got[1:], want[1:])
		}
	}
}

func TestExitCodes(t *testing.T) {
	if code, _, _ := runCLI(t, "devices", "show", "nosuchphone"); code != exitUsage {
		t.Errorf("unknown device: exit %d, want %d", code, exitUsage)
	}
	if code, _, _ := runCLI(t, "nosuchcommand"); code == 0 {
		t.Errorf("unknown command exited 0")
	}
	if code, _, _ := runCLI(t, "version", "--bogus-flag"); code != exitUsage {
		t.Errorf("bad flag: exit %d, want %d", code, exitUsage)
	}
	code, out, _ := runCLI(t, "--json", "devices", "show", "nosuchphone")
	if code != exitUsage || !strings.Contains(out, `"exit_code":2`) {
		t.Errorf("--json error: exit %d, out %q", code, out)
	}
}

func TestDoctorReports(t *testing.T) {
	code, out, _ := runCLI(t, "doctor", "--json")
	// Exit 1 where USB is missing (containers, CI), 0 on a workstation; either way every check is listed.
	if code != exitOK && code != exitFindings {
		t.Fatalf("doctor exit %d", code)
	}
	for _, name := range []string{`"name": "cache dir"`, `"name": "free disk"`, `"problems":`} {
		if !strings.Contains(out, name) {
			t.Errorf("doctor output lacks %s:\n%s", name, out)
		}
	}
}

func TestMissingRequiredFlagIsUsage(t *testing.T) {
	if code, _, stderr := runCLI(t, "sparse", "split", "x.img"); code != exitUsage {
		t.Fatalf("missing required flags: exit %d %s", code, stderr)
	}
}
