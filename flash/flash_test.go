package flash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash/plan"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/progress"
)

// mockDevice is an in-memory fastboot device: variables, partitions, a transcript and a write counter.
type mockDevice struct {
	vars       map[string]string
	parts      map[string][]byte
	buf        []byte
	log        []string
	writes     int64
	failAt     string // a command that fails once
	userspace  bool
	downloaded int
	dlBytes    int64
}

func (m *mockDevice) GetVar(_ context.Context, n string) (string, error) {
	if n == "is-userspace" {
		if m.userspace {
			return "yes", nil
		}
		return "no", nil
	}
	v, ok := m.vars[n]
	if !ok {
		return "", fmt.Errorf("FAIL unknown variable")
	}
	return v, nil
}

func (m *mockDevice) cmd(s string) error {
	m.log = append(m.log, s)
	if m.failAt != "" && s == m.failAt {
		m.failAt = ""
		return errors.New("remote: injected failure")
	}
	return nil
}

func (m *mockDevice) Download(_ context.Context, r io.Reader, size int64, t progress.Task) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if int64(len(b)) != size {
		return fmt.Errorf("download: got %d bytes, announced %d", len(b), size)
	}
	t.Add(size)
	m.buf = b
	m.downloaded++
	m.dlBytes += size
	return m.cmd(fmt.Sprintf("download:%08x", size))
}

func (m *mockDevice) Flash(_ context.Context, p string) error {
	if err := m.cmd("flash:" + p); err != nil {
		return err
	}
	data := m.buf
	if sparse.IsSparse(bytes.NewReader(data)) {
		si, err := sparse.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return err
		}
		if int64(len(m.parts[p])) < si.Size() {
			nb := make([]byte, si.Size())
			copy(nb, m.parts[p])
			m.parts[p] = nb
		}
		w := &sliceWriterAt{b: m.parts[p]}
		if err := si.Expand(context.Background(), w, false, nil); err != nil {
			return err
		}
		m.writes += int64(len(data))
		return nil
	}
	m.parts[p] = append([]byte(nil), data...)
	m.writes += int64(len(data))
	return nil
}

type sliceWriterAt struct{ b []byte }

func (s *sliceWriterAt) WriteAt(p []byte, off int64) (int, error) { return copy(s.b[off:], p), nil }

func (m *mockDevice) Erase(_ context.Context, p string) error { return m.cmd("erase:" + p) }
func (m *mockDevice) SetActive(_ context.Context, s string) error {
	return m.cmd("set_active:" + s)
}
func (m *mockDevice) Reboot(_ context.Context, t string) error {
	if t == "fastboot" {
		m.userspace = true
	}
	return m.cmd("reboot:" + t)
}
func (m *mockDevice) ResizeLogicalPartition(_ context.Context, n string, s int64) error {
	return m.cmd(fmt.Sprintf("resize-logical-partition:%s:%d", n, s))
}
func (m *mockDevice) SnapshotUpdate(_ context.Context, a string) error {
	return m.cmd("snapshot-update:" + a)
}

func device(t *testing.T, name string) *devices.Device {
	cat, err := devices.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	d, err := cat.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func armaniMock() *mockDevice {
	return &mockDevice{parts: map[string][]byte{}, vars: map[string]string{
		"product": "armani", "serialno": "abc123", "unlocked": "yes", "max-download-size": "0x100000",
		"partition-size:boot": "0x1000000", "partition-size:system": "0x28a00000", "slot-count": "0",
	}}
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		if (i/4096)%3 != 0 {
			b[i] = byte(i*7 + i/4096)
		}
	}
	return b
}

func TestRefusalsWriteNothing(t *testing.T) {
	dir := t.TempDir()
	boot := writeFile(t, dir, "boot.img", pattern(8192))
	big := writeFile(t, dir, "huge.img", pattern(0x1000000+4096))
	cases := map[string]struct {
		mut   func(*mockDevice)
		pairs []string
		plan  func(*plan.Plan)
		want  string
	}{
		"wrong product":   {mut: func(m *mockDevice) { m.vars["product"] = "lavender" }, want: "wrong phone"},
		"no product":      {mut: func(m *mockDevice) { delete(m.vars, "product") }, want: "did not answer 'getvar product'"},
		"locked":          {mut: func(m *mockDevice) { m.vars["unlocked"] = "no" }, want: "locked"},
		"lock unknown":    {mut: func(m *mockDevice) { delete(m.vars, "unlocked") }, want: "does not report its lock state"},
		"too big":         {pairs: []string{"boot=" + big}, want: "holds 16777216 bytes"},
		"battery":         {mut: func(m *mockDevice) { m.vars["battery-voltage"] = "3300" }, want: "3300 mV"},
		"battery soc":     {mut: func(m *mockDevice) { m.vars["battery-soc-ok"] = "no" }, want: "battery too low"},
		"unknown size":    {pairs: []string{"recovery2=" + boot}, want: "does not report the size of recovery2"},
		"hash changed":    {plan: func(p *plan.Plan) { p.Steps[0].SHA256 = strings.Repeat("0", 64) }, want: "changed or is corrupt"},
		"relock modified": {plan: func(p *plan.Plan) { p.Steps = append(p.Steps, plan.Step{Op: plan.OpLock}) }, want: "bricks Xiaomi phones"},
		"slot on A-only":  {plan: func(p *plan.Plan) { p.Slot = "b" }, want: "not an A/B device"},
		"A/B mismatch":    {mut: func(m *mockDevice) { m.vars["slot-count"] = "2" }, want: "catalog says armani is A-only"},
	}
	for name, tc := range cases {
		m := armaniMock()
		if tc.mut != nil {
			tc.mut(m)
		}
		pairs := tc.pairs
		if pairs == nil {
			pairs = []string{"boot=" + boot}
		}
		p, err := plan.PairsPlan(device(t, "armani"), pairs)
		if err != nil {
			t.Fatal(err)
		}
		if tc.plan != nil {
			tc.plan(p)
		}
		_, err = Preflight(context.Background(), m, p, PreflightOptions{})
		var re *plan.RefusedError
		if !errors.As(err, &re) || !errors.Is(err, failure.ErrRefused) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want refusal containing %q", name, err, tc.want)
		}
		if m.writes != 0 || m.downloaded != 0 {
			t.Errorf("%s: %d bytes written during pre-flight", name, m.writes)
		}
		for _, c := range m.log {
			t.Errorf("%s: pre-flight sent %s", name, c)
		}
	}
}

func TestAntiRollback(t *testing.T) {
	dir := t.TempDir()
	img := writeFile(t, dir, "x.img", pattern(4096))
	d := device(t, "lavender")
	mk := func(anti string) *mockDevice {
		m := &mockDevice{parts: map[string][]byte{}, vars: map[string]string{"product": "lavender", "serialno": "s", "unlocked": "yes",
			"partition-size:abl": "0x100000", "partition-size:boot": "0x4000000", "max-download-size": "0x1000000"}}
		if anti != "" {
			m.vars["anti"] = anti
		}
		return m
	}
	mkPlan := func(anti int, parts ...string) *plan.Plan {
		p := &plan.Plan{Device: d, Codename: d.Codename, AntiVersion: anti}
		for _, pt := range parts {
			p.Steps = append(p.Steps, plan.Step{Op: plan.OpFlash, Partition: pt, Image: img})
		}
		return p
	}
	cases := []struct {
		anti string
		p    *plan.Plan
		ok   bool
		want string
	}{
		{"4", mkPlan(3, "abl"), false, "ROM is version 3, the device is at 4"},
		{"4", mkPlan(4, "abl"), true, ""},
		{"", mkPlan(5, "abl"), false, "unknown is not 0"},
		{"4", mkPlan(-1, "abl"), false, "states no anti-rollback version"},
		{"", mkPlan(-1, "boot"), true, ""},
	}
	for i, tc := range cases {
		_, err := Preflight(context.Background(), mk(tc.anti), tc.p, PreflightOptions{})
		if tc.ok != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("case %d: %v", i, err)
		}
	}
}

func TestABOrderAndSplitting(t *testing.T) {
	dir := t.TempDir()
	d := device(t, "alioth")
	bootData := pattern(3 << 20) // larger than max-download-size: split into sparse pieces
	boot := writeFile(t, dir, "boot.img", bootData)
	sys := writeFile(t, dir, "system.img", pattern(64<<10))
	m := &mockDevice{parts: map[string][]byte{}, vars: map[string]string{
		"product": "alioth", "serialno": "xyz", "unlocked": "yes", "slot-count": "2", "current-slot": "a",
		"max-download-size": "0x100000", "partition-size:boot_b": "0xc000000", "anti": "1", "snapshot-update-status": "none",
		"has-slot:boot": "yes", "has-slot:system": "yes",
	}}
	p := &plan.Plan{Device: d, Codename: d.Codename, AntiVersion: -1, Steps: []plan.Step{
		{Op: plan.OpFlash, Partition: "boot", Image: boot}, {Op: plan.OpFlash, Partition: "system", Image: sys, Logical: true}, {Op: plan.OpReboot}}}
	chk, err := Preflight(context.Background(), m, p, PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range chk.Commands {
		lines = append(lines, c.String())
	}
	want := "fastboot flash boot_b boot.img|fastboot reboot fastboot|fastboot resize-logical-partition system_b 65536|fastboot flash system_b system.img|fastboot set_active b|fastboot reboot"
	if got := strings.Join(lines, "|"); got != want {
		t.Fatalf("plan:\n%s\nwant:\n%s", got, want)
	}
	var rec progress.Recorder
	var events []Event
	err = Run(context.Background(), m, p, chk, RunOptions{Progress: &rec, Reconnect: func(context.Context) (Device, error) { return m, nil },
		Events: func(e Event) { events = append(events, e) }})
	if err != nil {
		t.Fatal(err)
	}
	// Done events of flash steps account for every byte downloaded, for rates in --json output.
	var evBytes int64
	for _, e := range events {
		if e.Kind == "done" && strings.HasPrefix(e.Command, "fastboot flash ") {
			if e.DownloadBytes <= 0 || e.DownloadSeconds <= 0 {
				t.Errorf("done event without transfer figures: %+v", e)
			}
			evBytes += e.DownloadBytes
		}
	}
	if evBytes != m.dlBytes {
		t.Errorf("events report %d bytes downloaded, the device received %d", evBytes, m.dlBytes)
	}
	if !bytes.Equal(m.parts["boot_b"], bootData) {
		t.Fatal("split boot image does not reassemble on the device")
	}
	if m.downloaded < 4 {
		t.Fatalf("a 3 MiB image with 1 MiB max-download went in %d downloads", m.downloaded)
	}
	if _, ok := m.parts["boot_a"]; ok {
		t.Fatal("active slot written")
	}
	// set_active comes after every flash.
	lastFlash, setActive := -1, -1
	for i, c := range m.log {
		if strings.HasPrefix(c, "flash:") {
			lastFlash = i
		}
		if c == "set_active:b" {
			setActive = i
		}
	}
	if setActive < lastFlash {
		t.Fatalf("set_active before the last write: %v", m.log)
	}
	if rec.Total("flash boot_b") == 0 {
		t.Fatal("no progress reported")
	}
}

func TestJournalResume(t *testing.T) {
	dir := t.TempDir()
	boot := writeFile(t, dir, "boot.img", pattern(8192))
	sys := writeFile(t, dir, "system.img", pattern(16384))
	m := armaniMock()
	m.failAt = "flash:system"
	p, _ := plan.PairsPlan(device(t, "armani"), []string{"boot=" + boot, "system=" + sys})
	chk, err := Preflight(context.Background(), m, p, PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(dir, "journal.json")
	err = Run(context.Background(), m, p, chk, RunOptions{Journal: journal})
	if err == nil || !strings.Contains(err.Error(), "--resume") || !errors.Is(err, failure.ErrIO) {
		t.Fatalf("first run: %v", err)
	}
	j, err := loadJournal(journal)
	if err != nil || j.Done != 1 {
		t.Fatalf("journal %+v %v", j, err)
	}
	// Another phone must not resume this journal.
	other := armaniMock()
	other.vars["serialno"] = "different"
	chk2, _ := Preflight(context.Background(), other, p, PreflightOptions{})
	if err := Run(context.Background(), other, p, chk2, RunOptions{Journal: journal, Resume: true}); !errors.Is(err, failure.ErrRefused) {
		t.Fatalf("resume on another phone: %v", err)
	}
	// An image rewritten between the runs (same path, same size) is not resumed into. The file clock is
	// coarse (a few ms), so the rewrite is dated a minute later, as it would be in real use.
	st, _ := os.Stat(sys)
	if err := os.WriteFile(sys, bytes.Repeat([]byte{1}, 16384), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(sys, st.ModTime().Add(time.Minute), st.ModTime().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), m, p, chk, RunOptions{Journal: journal, Resume: true}); !errors.Is(err, failure.ErrRefused) || !strings.Contains(err.Error(), "changed since the interrupted flash") {
		t.Fatalf("resume with a changed image: %v", err)
	}
	if err := os.WriteFile(sys, pattern(16384), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(sys, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	before := len(m.log)
	if err := Run(context.Background(), m, p, chk, RunOptions{Journal: journal, Resume: true}); err != nil {
		t.Fatal(err)
	}
	for _, c := range m.log[before:] {
		if c == "flash:boot" {
			t.Fatal("resume flashed boot again")
		}
	}
	if !bytes.Equal(m.parts["system"], pattern(16384)) {
		t.Fatal("system not flashed on resume")
	}
	if _, err := os.Stat(journal); !os.IsNotExist(err) {
		t.Fatal("journal left after success")
	}
}

var _ = image.New
