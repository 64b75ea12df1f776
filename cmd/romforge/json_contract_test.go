package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/demo/sample"
	"github.com/romforge/romforge/flash/emulator"
	"github.com/romforge/romforge/internal/validators"
)

// The machine-output contract (docs/json.md): with --json, stdout holds exactly one JSON document (the
// result or the error) and every stderr line is one JSON object with an "event" name.

// eventKinds are the event names docs/json.md lists.
var eventKinds = map[string]bool{"start": true, "progress": true, "done": true, "error": true, "log": true,
	"plan": true, "step": true, "phone": true, "result": true, "summary": true, "finding": true, "warning": true}

// checkContract validates both streams of one --json run and returns the stdout document.
func checkContract(t *testing.T, name, stdout, stderr string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	var doc any
	if err := dec.Decode(&doc); err != nil {
		t.Errorf("%s: stdout is not one JSON document: %v\n%.500s", name, err, stdout)
		return nil
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		t.Errorf("%s: stdout holds more than one JSON document (%v)\n%.800s", name, err, stdout)
	}
	totals := map[string]float64{}
	for i, line := range strings.Split(stderr, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Errorf("%s: stderr line %d is not a JSON object: %.200q", name, i+1, line)
			continue
		}
		kind, _ := ev["event"].(string)
		if !eventKinds[kind] {
			t.Errorf("%s: stderr line %d has event %q, not one docs/json.md lists", name, i+1, kind)
			continue
		}
		switch kind {
		case "start", "progress", "done":
			task, ok := ev["task"].(string)
			if !ok || task == "" {
				t.Errorf("%s: %s event without a task label: %s", name, kind, line)
			}
			total, _ := ev["total"].(float64)
			if kind == "start" {
				totals[task] = total
			}
			if d, ok := ev["done"].(float64); ok && total > 0 && d > total {
				t.Errorf("%s: %s reports %v done of %v", name, task, d, total)
			}
		case "log", "warning":
			if m, _ := ev["message"].(string); m == "" {
				t.Errorf("%s: %s event without a message: %s", name, kind, line)
			}
		case "error":
			if m, _ := ev["error"].(string); m == "" {
				t.Errorf("%s: error event without an error: %s", name, line)
			}
		}
	}
	m, _ := doc.(map[string]any)
	if arr, ok := doc.([]any); ok {
		m = map[string]any{"items": arr}
	}
	return m
}

// TestJSONContract runs every command that reports with --json, on real inputs, and checks both streams.
func TestJSONContract(t *testing.T) {
	fx := validators.Fixtures(t)
	tmp := t.TempDir()
	in := func(p string) string { return filepath.Join(fx, p) }
	out := func(p string) string { return filepath.Join(tmp, p) }

	romFile := filepath.Join(tmp, "rom.bin")
	os.WriteFile(romFile, bytes.Repeat([]byte("romforge"), 4096), 0o644)
	srv := httptest.NewServer(http.FileServer(http.Dir(tmp)))
	defer srv.Close()
	key := in("keys/testkey_rsa2048.pem")

	type invocation struct {
		name  string
		args  []string
		codes []int // accepted exit codes (default 0)
		err   bool  // the document is an error object
	}
	bundleDir := sampleBundle(t)
	sampleROM := filepath.Join(tmp, "lineage-14.1-armani.zip")
	if f, err := os.Create(sampleROM); err == nil {
		if err := sample.ArmaniROM(context.Background(), f, sample.Options{SystemSize: 24 << 20}); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	_, phone := startEmulator(t, "armani", emulator.Options{})
	_, phone2 := startEmulator(t, "armani", emulator.Options{})
	_, phone3 := startEmulator(t, "armani", emulator.Options{Locked: true})
	relSum := sha256.Sum256([]byte("release bytes"))
	rel := fakeReleases(t, []byte("release bytes"), hex.EncodeToString(relSum[:])+"  lineage-14.1-20231114-UNOFFICIAL-armani.zip\n")
	footerImg := out("footer.img")
	avbCopy(t, in("ext4/system.img"), footerImg)
	hashImg := out("hash.img")
	avbCopy(t, in("boot/boot-v2.img"), hashImg)
	cases := []invocation{
		{name: "version", args: []string{"version"}},
		{name: "devices", args: []string{"devices"}},
		{name: "devices show", args: []string{"devices", "show", "armani"}},
		{name: "devices show unknown", args: []string{"devices", "show", "nosuchphone"}, codes: []int{2}, err: true},
		{name: "devices table", args: []string{"devices", "table", "armani", "--serial", phone, "-o", out("armani-table.yaml")}},
		{name: "devices table wrong phone", args: []string{"devices", "table", "vayu", "--serial", phone}, codes: []int{3}, err: true},
		{name: "doctor", args: []string{"doctor"}, codes: []int{0, 1}},
		{name: "patches list", args: []string{"patches", "list"}},
		{name: "patches show", args: []string{"patches", "show", "xiaomi-hardened"}},
		{name: "ci matrix", args: []string{"ci", "matrix", "--devices", "lavender", "--devices", "alioth,ginkgo"}},
		{name: "inspect", args: []string{"inspect", in("payload/ota-full.zip")}},
		{name: "inspect bad", args: []string{"inspect", romFile}, codes: []int{0, 4}},
		{name: "unpack", args: []string{"unpack", in("payload/ota-full.zip"), "-o", out("unpacked")}},
		{name: "sparse to-raw", args: []string{"sparse", "to-raw", in("sparse/pattern.sparse.img"), out("p.raw")}},
		{name: "sparse to-sparse", args: []string{"sparse", "to-sparse", in("sparse/pattern.raw"), out("p.simg")}},
		{name: "sparse split", args: []string{"sparse", "split", in("sparse/big.sparse.img"), "--max", "4M", "-o", out("split")}},
		{name: "fs ls", args: []string{"fs", "ls", in("ext4/system.img")}},
		{name: "fs extract", args: []string{"fs", "extract", in("ext4/system.img"), out("tree")}},
		{name: "fs build", args: []string{"fs", "build", out("tree"), out("rebuilt.img"), "--shrink"}},
		{name: "boot unpack", args: []string{"boot", "unpack", in("boot/boot-v2.img"), "-o", out("boot")}},
		{name: "boot repack", args: []string{"boot", "repack", out("boot"), "-o", out("boot-new.img")}},
		{name: "avb verify", args: []string{"avb", "verify", in("avb/vbmeta.img")}, codes: []int{0, 1}},
		{name: "avb extract-public-key", args: []string{"avb", "extract-public-key", key, "-o", out("key.avbpubkey")}},
		{name: "vbmeta patch", args: []string{"vbmeta", "patch", in("avb/vbmeta.img"), out("vbmeta-patched.img"), "--disable-verity"}},
		{name: "vbmeta sign", args: []string{"vbmeta", "sign", "--key", key, "-o", out("vbmeta-signed.img")}},
		{name: "audit findings", args: []string{"audit", out("tree")}, codes: []int{0, 1}},
		{name: "patch", args: []string{"patch", out("tree"), "--set", "xiaomi-hardened"}, codes: []int{0, 1}},
		{name: "fetch url", args: []string{"fetch", "--url", srv.URL + "/rom.bin", "--allow-unverified", "-o", out("dl")}, codes: []int{0, 2, 4}},
		{name: "flash dry-run", args: []string{"flash", bundleDir, "--dry-run", "--serial", "tcp:127.0.0.1:1"}, codes: []int{0, 3, 5}},
		{name: "flash", args: []string{"flash", bundleDir, "--serial", phone, "--yes"}},
		{name: "flash batch", args: []string{"flash", bundleDir, "--serial", phone2, "--serial", phone3, "--yes", "--log-dir", out("logs")}, codes: []int{3}},
		{name: "fastboot getvar", args: []string{"fastboot", "getvar", "product", "--serial", phone}},
		{name: "fastboot devices", args: []string{"fastboot", "devices"}},
		{name: "fastboot flash", args: []string{"fastboot", "flash", "boot", in("boot/boot-v2.img"), "--serial", phone}},
		{name: "fastboot reboot", args: []string{"fastboot", "reboot", "--serial", phone}},
		{name: "build", args: []string{"build", "--device", "armani", "--input", sampleROM, "-o", out("bundle2")}},
		{name: "releases", args: []string{"releases", "--device", "armani", "--source", "github:armani-dev/android_releases", "--github-api", rel.URL}},
		{name: "avb add-hashtree-footer", args: []string{"avb", "add-hashtree-footer", footerImg, "--partition-name", "system", "--partition-size", "20M"}},
		{name: "avb add-hash-footer", args: []string{"avb", "add-hash-footer", hashImg, "--partition-name", "boot", "--partition-size", "64M"}},
		{name: "demo", args: []string{"demo"}},
		{name: "unpack bad input", args: []string{"unpack", romFile, "-o", out("bad")}, codes: []int{4}, err: true},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		seen[strings.Join(commandWords(tc.args), " ")] = true
		code, stdout, stderr := runCLI(t, append(tc.args, "--json")...)
		codes := tc.codes
		if codes == nil {
			codes = []int{0}
		}
		okCode := false
		for _, c := range codes {
			okCode = okCode || c == code
		}
		if !okCode {
			t.Errorf("%s: exit %d, want one of %v\nstdout: %.600s\nstderr: %.600s", tc.name, code, codes, stdout, stderr)
			continue
		}
		doc := checkContract(t, tc.name, stdout, stderr)
		if doc == nil {
			continue
		}
		_, isErr := doc["error"]
		if tc.err && (!isErr || doc["hint"] == "" || doc["exit_code"] == nil) {
			t.Errorf("%s: the document is not an error object with exit_code and hint: %.300v", tc.name, doc)
		}
		if code != 0 && !isErr && !strings.Contains(stderr, `"event":"error"`) {
			t.Errorf("%s: exit %d but neither stdout nor stderr says why", tc.name, code)
		}
	}
	// Every command that can report must be in the table (or say here why it is not).
	exempt := map[string]string{
		"completion":      "prints a shell script for the shell to source",
		"demo":            "covered by TestDemoJSON in demo (the whole job, several seconds)",
		"emulate":         "a server that runs until interrupted",
		"fs cat":          "prints the file's bytes, not a report",
		"releases":        "needs a release server: TestFetchAndReleases covers its --json",
		"build":           "sampleBundle builds; TestBuildJSON checks its streams",
		"fastboot getvar": "needs a phone: cmd_fastboot_test covers it", "fastboot devices": "needs phones",
		"fastboot flash": "needs a phone", "fastboot reboot": "needs a phone",
		"avb add-hash-footer": "writes in place; covered by cmd_avb_test", "avb add-hashtree-footer": "writes in place; covered by cmd_avb_test",
	}
	var missing []string
	var walk func(prefix string, cs []*cli.Command)
	walk = func(prefix string, cs []*cli.Command) {
		for _, c := range cs {
			name := strings.TrimSpace(prefix + " " + c.Name)
			if len(c.Subcommands) > 0 && c.Action == nil {
				walk(name, c.Subcommands)
				continue
			}
			if !seen[name] && exempt[name] == "" && c.Name != "help" {
				missing = append(missing, name)
			}
			walk(name, c.Subcommands)
		}
	}
	walk("", newApp(nil, nil, nil).Commands)
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("commands without a --json contract case: %v", missing)
	}
}

// commandWords is the command path of args (the words before the first flag or positional argument
// that is not a known command).
func commandWords(args []string) []string {
	var words []string
	cs := newApp(nil, nil, nil).Commands
	for _, a := range args {
		c := findCommand(cs, a)
		if c == nil {
			break
		}
		words = append(words, c.Name)
		cs = c.Subcommands
	}
	return words
}
