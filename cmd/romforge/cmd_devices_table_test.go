package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash/emulator"
)

// A phone's table read over fastboot, written as a user catalog file, comes back through the catalog:
// spes's emulated bootloader answers the catalog's own full table, so nothing differs.
func TestDevicesTableFromPhone(t *testing.T) {
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	_, serial := startEmulator(t, "spes", emulator.Options{})
	out := filepath.Join(cfg, "romforge", "devices", "spes-table.yaml")
	os.MkdirAll(filepath.Dir(out), 0o755)
	code, _, stderr := runCLI(t, "devices", "table", "spes", "--serial", serial, "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "0 differences from the catalog") {
		t.Errorf("stderr: %s", stderr)
	}
	code, stdout, stderr := runCLI(t, "--json", "devices", "show", "spes")
	if code != 0 {
		t.Fatalf("show: exit %d: %s", code, stderr)
	}
	var d struct {
		Partitions []devices.Partition `json:"partitions"`
		Table      *devices.Table      `json:"table"`
	}
	if err := json.Unmarshal([]byte(stdout), &d); err != nil {
		t.Fatal(err)
	}
	find := func(name string) (devices.Partition, bool) {
		for _, p := range d.Partitions {
			if p.Name == name {
				return p, true
			}
		}
		return devices.Partition{}, false
	}
	if d.Table == nil || d.Table.From != "getvar" || !strings.HasSuffix(d.Table.Origin, "spes-table.yaml") {
		t.Fatalf("table %+v", d.Table)
	}
	cat, err := devices.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	builtin, _ := cat.Lookup("spes")
	for _, p := range builtin.Partitions {
		q, ok := find(p.Name)
		if !ok || q.Size != p.Size || q.NoSlot != p.NoSlot || q.Logical != p.Logical {
			t.Errorf("%s: %+v after the round trip, %+v before", p.Name, q, p)
		}
	}
}

// A transcript saved from a phone whose catalog entry has no table: romforge's own getvar all output,
// and the AOSP client's (when installed), read from a file and from stdin; the differences name what the
// catalog lacks. A phone of another model is refused.
func TestDevicesTableFromTranscript(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	_, serial := startEmulator(t, "vayu", emulator.Options{})
	code, ours, stderr := runCLI(t, "fastboot", "getvar", "all", "--serial", serial)
	if code != 0 {
		t.Fatalf("getvar all: exit %d: %s", code, stderr)
	}
	transcripts := map[string]string{"romforge": ours}
	if fb, err := exec.LookPath("fastboot"); err == nil {
		b, err := exec.Command(fb, "-s", serial, "getvar", "all").CombinedOutput() // the client answers on stderr
		if err != nil {
			t.Fatalf("AOSP fastboot getvar all: %v\n%s", err, b)
		}
		transcripts["aosp"] = string(b)
	} else {
		t.Log("AOSP fastboot client not installed: only romforge's transcript is read")
	}
	for name, text := range transcripts {
		path := filepath.Join(t.TempDir(), name+".txt")
		os.WriteFile(path, []byte(text), 0o644)
		code, stdout, stderr := runCLI(t, "--json", "devices", "table", "vayu", "--getvar", path)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, stderr)
		}
		var doc struct {
			Partitions  []devices.Partition `json:"partitions"`
			Differences []devices.TableDiff `json:"differences"`
			Table       devices.Table       `json:"table"`
		}
		if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, stdout)
		}
		found := false
		for _, df := range doc.Differences {
			if df.Partition == "userdata" && df.Catalog == 0 && df.Table > 0 {
				found = true
			}
		}
		if !found || len(doc.Partitions) < 5 || !strings.Contains(doc.Table.Source, name+".txt") {
			t.Errorf("%s: %+v", name, doc)
		}
		// The same from stdin, as a pipe from the client would give it.
		var o, e bytes.Buffer
		if code := run(context.Background(), []string{"romforge", "devices", "table", "vayu", "--getvar", "-"}, strings.NewReader(text), &o, &e); code != 0 || !strings.Contains(o.String(), "codename: \"vayu\"") {
			t.Errorf("%s from stdin: exit %d\n%s\n%s", name, code, o.String(), e.String())
		}
	}
	code, _, stderr = runCLI(t, "devices", "table", "spes", "--serial", serial)
	if code != exitRefused || !strings.Contains(stderr, `"vayu"`) {
		t.Errorf("another model's phone: exit %d: %s", code, stderr)
	}
}
