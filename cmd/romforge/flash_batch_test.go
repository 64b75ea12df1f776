package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/romforge/romforge/bundle"
	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash"
	"github.com/romforge/romforge/flash/emulator"
	"github.com/romforge/romforge/flash/fastboot"
	"github.com/romforge/romforge/flash/plan"
)

// smallBundle writes a bundle for codename with a boot and a system image of random bytes (what the
// batch is about is which phone gets which bundle, not the images' content).
func smallBundle(t *testing.T, root, codename string, rng *rand.Rand) {
	t.Helper()
	cat, _ := devices.Builtin()
	d, err := cat.Lookup(codename)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, codename)
	os.MkdirAll(filepath.Join(dir, "images"), 0o755)
	m := &bundle.Manifest{Format: 1, Device: codename, Products: d.Products, Romforge: "test", AntiVersion: -1, AntiRollback: d.AntiRollback, Verity: "keep"}
	for _, part := range []string{"boot", "system"} {
		data := make([]byte, (16+rng.IntN(48))<<10)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		rel := "images/" + part + ".img"
		if err := os.WriteFile(filepath.Join(dir, rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:])
		m.Images = append(m.Images, bundle.Image{Partition: part, File: rel, Format: "raw", Size: int64(len(data)), SHA256: h, Modified: true})
		m.Steps = append(m.Steps, plan.Step{Op: plan.OpFlash, Partition: part, Image: rel, SHA256: h})
	}
	m.Steps = append(m.Steps, plan.Step{Op: plan.OpReboot})
	if err := bundle.Write(dir, m); err != nil {
		t.Fatal(err)
	}
}

// startUDPEmulator serves a virtual phone over UDP on loopback.
func startUDPEmulator(t *testing.T, codename string, opt emulator.Options) (*emulator.Device, string) {
	t.Helper()
	cat, _ := devices.Builtin()
	d, err := cat.Lookup(codename)
	if err != nil {
		t.Fatal(err)
	}
	opt.StateDir = t.TempDir()
	em, err := emulator.New(d, opt)
	if err != nil {
		t.Fatal(err)
	}
	l, err := fastboot.ListenUDP("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { em.ServeListener(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); l.Close(); <-done })
	return em, "udp:" + l.Addr().String()
}

// syncBuffer is a bytes.Buffer a running command writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type batchDoc struct {
	Phones   []flash.Status `json:"phones"`
	OK       int            `json:"ok"`
	Refused  int            `json:"refused"`
	Skipped  int            `json:"skipped"`
	Failed   int            `json:"failed"`
	LogDir   string         `json:"log_dir"`
	ExitCode int            `json:"exit_code"`
}

// firstDoc decodes the first JSON document of stdout (there must be one).
func firstDoc(t *testing.T, stdout string) batchDoc {
	t.Helper()
	var doc batchDoc
	if err := json.NewDecoder(strings.NewReader(stdout)).Decode(&doc); err != nil {
		t.Fatalf("stdout is not a JSON document: %v\n%s", err, stdout)
	}
	return doc
}

// TestFlashBundlesFolderMixedPhones is the shop's morning: six phones of three models over TCP and
// UDP, one locked, one of a model the bundles folder has no bundle for. Each phone gets its model's
// bundle; the locked one is refused with nothing written, the other model skipped; exit 3; the JSON
// summary and the table say so with every reason; each phone has its transcript. Then station mode
// flashes a seventh phone the moment it is added to the serials file.
func TestFlashBundlesFolderMixedPhones(t *testing.T) {
	rng := rand.New(rand.NewPCG(2026, 17))
	bundles := t.TempDir()
	smallBundle(t, bundles, "armani", rng)
	smallBundle(t, bundles, "lavender", rng)

	type ph struct {
		em     *emulator.Device
		serial string
		want   string
	}
	var phones []ph
	add := func(em *emulator.Device, serial, want string) { phones = append(phones, ph{em, serial, want}) }
	em, s := startEmulator(t, "armani", emulator.Options{})
	add(em, s, flash.ResultOK)
	em, s = startUDPEmulator(t, "armani", emulator.Options{})
	add(em, s, flash.ResultOK)
	em, s = startEmulator(t, "lavender", emulator.Options{})
	add(em, s, flash.ResultOK)
	em, s = startUDPEmulator(t, "lavender", emulator.Options{})
	add(em, s, flash.ResultOK)
	em, s = startEmulator(t, "lavender", emulator.Options{Locked: true})
	add(em, s, flash.ResultRefused)
	em, s = startUDPEmulator(t, "ginkgo", emulator.Options{})
	add(em, s, flash.ResultSkipped)

	cache, logs := t.TempDir(), t.TempDir()
	args := []string{"flash", bundles, "--yes", "--json", "--cache-dir", cache, "--log-dir", logs}
	for i, p := range phones {
		if i == 4 { // the last two as one comma list
			args = append(args, "-s", p.serial+","+phones[5].serial)
			break
		}
		args = append(args, "--serial", p.serial)
	}
	code, stdout, stderr := runCLI(t, args...)
	if code != exitRefused {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitRefused, stdout, stderr)
	}
	doc := firstDoc(t, stdout)
	if doc.OK != 4 || doc.Refused != 1 || doc.Skipped != 1 || doc.Failed != 0 || doc.ExitCode != exitRefused || len(doc.Phones) != 6 {
		t.Fatalf("summary: %+v\n%s", doc, stdout)
	}
	for i, p := range phones {
		row := doc.Phones[i]
		if row.Serial != p.serial || row.State != p.want {
			t.Errorf("row %d: %s %s %q, want %s %s", i, row.Serial, row.State, row.Reasons, p.serial, p.want)
		}
		if _, err := os.Stat(filepath.Join(logs, flash.LogName(p.serial))); err != nil {
			t.Errorf("%s: transcript: %v", p.serial, err)
		}
		switch p.want {
		case flash.ResultOK:
			if p.em.Writes() == 0 || row.Written == 0 || row.Model == "" || row.Seconds <= 0 {
				t.Errorf("%s: ok but %d bytes written (row %+v)", p.serial, p.em.Writes(), row)
			}
			codename := "armani"
			if i >= 2 {
				codename = "lavender"
			}
			want, _ := os.ReadFile(filepath.Join(bundles, codename, "images", "system.img"))
			got, _ := os.ReadFile(p.em.PartitionPath("system"))
			if row.Bundle != codename || len(got) < len(want) || !bytes.Equal(got[:len(want)], want) {
				t.Errorf("%s: bundle %q, system partition does not hold %s's image", p.serial, row.Bundle, codename)
			}
		case flash.ResultRefused:
			if p.em.Writes() != 0 || row.Written != 0 || !strings.Contains(strings.Join(row.Reasons, "\n"), "locked") {
				t.Errorf("locked phone: %d bytes written, row %+v", p.em.Writes(), row)
			}
		case flash.ResultSkipped:
			if p.em.Writes() != 0 || len(row.Reasons) != 1 || row.Reasons[0] != "no bundle for ginkgo" {
				t.Errorf("ginkgo: %d bytes written, row %+v", p.em.Writes(), row)
			}
		}
	}
	b, _ := os.ReadFile(filepath.Join(logs, flash.LogName(phones[4].serial)))
	if !strings.Contains(string(b), "result: refused") || !strings.Contains(string(b), "locked") {
		t.Errorf("locked phone's transcript:\n%s", b)
	}
	b, _ = os.ReadFile(filepath.Join(logs, flash.LogName(phones[0].serial)))
	if !strings.Contains(string(b), "plan: fastboot flash system system.img") || !strings.Contains(string(b), "result: ok") {
		t.Errorf("armani transcript:\n%s", b)
	}
	// stderr is JSON lines: phone events, one result per phone.
	results := 0
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("stderr line is not JSON: %q", l)
		}
		if ev["event"] == "result" {
			results++
		}
	}
	if results != 6 {
		t.Errorf("%d result events on stderr, want 6", results)
	}

	// The table: a dry run over the same phones (nothing is written) prints every reason.
	before := phones[0].em.Writes()
	code, stdout, stderr = runCLI(t, "flash", bundles, "--dry-run", "--cache-dir", cache, "--log-dir", t.TempDir(),
		"-s", phones[0].serial, "-s", phones[4].serial, "-s", phones[5].serial)
	if code != exitRefused || phones[0].em.Writes() != before {
		t.Fatalf("dry run: exit %d, writes %d → %d\n%s\n%s", code, before, phones[0].em.Writes(), stdout, stderr)
	}
	for _, want := range []string{"MODEL", "REASONS", "refused", "locked", "skipped", "no bundle for ginkgo", "1 ok, 1 refused, 1 skipped, 0 failed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}

	// Station mode: a seventh phone appended to the serials file is flashed, once.
	saved := listUSBPorts
	listUSBPorts = func(context.Context) ([]string, error) { return nil, nil }
	defer func() { listUSBPorts = saved }()
	seventh, s7 := startEmulator(t, "armani", emulator.Options{})
	file := filepath.Join(t.TempDir(), "serials")
	os.WriteFile(file, []byte("# bench\n"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wout, werr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"romforge", "flash", bundles, "--watch", "--serials-file", file, "--yes", "--json",
			"--cache-dir", cache, "--log-dir", logs, "--http", "127.0.0.1:0"}, strings.NewReader(""), &wout, &werr)
	}()
	time.Sleep(300 * time.Millisecond) // the station is polling an empty list
	f, _ := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintln(f, s7)
	f.Close()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(werr.String(), `"event":"result"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the seventh phone was not flashed:\n%s", werr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	flashes := seventh.Stats().Flashes
	// The status page has the row and the tally.
	page := regexp.MustCompile(`status page: (http://127\.0\.0\.1:\d+/)`).FindStringSubmatch(werr.String())
	if page == nil {
		t.Fatalf("no status page address on stderr:\n%s", werr.String())
	}
	var rows struct {
		Rows  []flash.Status `json:"rows"`
		Tally flash.Tally    `json:"tally"`
	}
	resp, err := http.Get(page[1] + "rows")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&rows)
	resp.Body.Close()
	if err != nil || len(rows.Rows) != 1 || rows.Rows[0].Serial != s7 || rows.Rows[0].State != flash.ResultOK || rows.Tally.OK != 1 {
		t.Fatalf("status page rows: %v %+v", err, rows)
	}
	time.Sleep(1500 * time.Millisecond) // a poll or two with the phone still listed
	cancel()
	select {
	case code = <-exit:
	case <-time.After(30 * time.Second):
		t.Fatal("station did not stop on cancel")
	}
	if code != 0 {
		t.Fatalf("station exit %d\n%s\n%s", code, wout.String(), werr.String())
	}
	if !strings.Contains(werr.String(), `{"event":"summary","ok":1,"refused":0,"skipped":0,"failed":0}`) {
		t.Errorf("no running tally event on stderr:\n%s", werr.String())
	}
	doc = firstDoc(t, wout.String())
	if doc.OK != 1 || len(doc.Phones) != 1 || doc.Phones[0].Serial != s7 || seventh.Writes() == 0 || seventh.Stats().Flashes != flashes {
		t.Fatalf("station: %+v, writes %d, flashes %d → %d", doc, seventh.Writes(), flashes, seventh.Stats().Flashes)
	}
}

// Property: however many reasons a phone has and however many lines they span, the summary's columns
// stay aligned: every continuation line is blank up to the REASONS column.
func TestSummaryTableAligned(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	words := []string{"locked", "anti-rollback", "the device", "did not answer", "partition", "Ωmega", "ÿ", "\x1b[1A"}
	for iter := 0; iter < 100; iter++ {
		sum := &flash.Summary{}
		for i := 1 + rng.IntN(6); i > 0; i-- {
			st := flash.Status{Serial: fmt.Sprintf("tcp:10.0.0.%d:%d", rng.IntN(256), 1+rng.IntN(65535)), Model: words[rng.IntN(len(words))],
				State: []string{flash.ResultOK, flash.ResultRefused, flash.ResultSkipped, flash.ResultFailed}[rng.IntN(4)], Seconds: rng.Float64() * 100}
			for j := rng.IntN(4); j > 0; j-- {
				var r []string
				for k := 1 + rng.IntN(3); k > 0; k-- {
					r = append(r, words[rng.IntN(len(words))])
				}
				st.Reasons = append(st.Reasons, strings.Join(r, []string{" ", "\n"}[rng.IntN(2)]))
			}
			sum.Add(st)
		}
		var b bytes.Buffer
		writeSummary(&b, sum, func(s string) string { return s })
		if strings.ContainsRune(b.String(), 0x1b) {
			t.Fatalf("iter %d: an escape sequence reached the table:\n%q", iter, b.String())
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		col := utf8.RuneCountInString(lines[0][:strings.Index(lines[0], "REASONS")])
		want := 2 // the heading and the totals
		for _, p := range sum.Phones {
			n := 0
			for _, r := range p.Reasons {
				n += len(strings.Split(r, "\n"))
			}
			want += max(n, 1)
		}
		if len(lines) != want {
			t.Fatalf("iter %d: %d lines, want %d\n%s", iter, len(lines), want, b.String())
		}
		for _, l := range lines[1 : len(lines)-1] {
			r := []rune(l)
			if len(r) <= col {
				continue // a row without reasons
			}
			if r[col-1] != ' ' || r[col-2] != ' ' || !(r[col] == '-' || r[col] == ' ' && r[col+1] == ' ') {
				t.Fatalf("iter %d: REASONS column misaligned at %q\n%s", iter, l, b.String())
			}
		}
	}
}

func TestLiveLinesFitTheTerminal(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 11))
	now := time.Now()
	for iter := 0; iter < 200; iter++ {
		var rows []flash.Status
		for i := 1 + rng.IntN(8); i > 0; i-- {
			total := rng.Int64N(1 << 32)
			rows = append(rows, flash.Status{
				Serial: fmt.Sprintf("udp:192.168.%d.%d:%d", rng.IntN(256), rng.IntN(256), rng.IntN(65536)),
				Model:  strings.Repeat("Redmi Note ", rng.IntN(5)) + []string{"", "\x1b[2J\x1b[31m"}[rng.IntN(2)], State: []string{flash.StateFlashing, flash.ResultOK, flash.ResultFailed, flash.StateChecking}[rng.IntN(4)],
				Step: "fastboot flash system system.img", Index: 2, Steps: 5, Total: total, Bytes: rng.Int64N(total + 1),
				Rate: rng.Float64() * 1e8, ETA: rng.Float64()*1000 - 1, Reasons: []string{"the bootloader is locked:\nunlock it"},
			})
		}
		width := 20 + rng.IntN(200)
		for _, l := range renderLiveLines(rows, width, now) {
			// A phone's answers are printed: their escape sequences must not reach the terminal.
			if n := utf8.RuneCountInString(l); n > width || strings.ContainsAny(l, "\n\x1b") {
				t.Fatalf("width %d: line of %d runes: %q", width, n, l)
			}
		}
	}
}

// "-s" and "--serial" mixed keep every value in order (urfave/cli alone refuses two spellings).
func TestSerialFlagBothSpellings(t *testing.T) {
	got, err := normalizeArgs(newApp(nil, nil, nil), strings.Fields("romforge flash b -s a --serial tcp:h -s=c --json"))
	if err != nil {
		t.Fatal(err)
	}
	want := "romforge --json flash --serial a --serial tcp:h --serial=c b"
	if strings.Join(got, " ") != want {
		t.Fatalf("got  %q\nwant %q", strings.Join(got, " "), want)
	}
}

// A station's live block never outgrows the terminal (lines scrolled off cannot be redrawn) and keeps
// every phone in progress in view while they fit.
func TestLiveViewFitsTheScreen(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 13))
	for iter := 0; iter < 300; iter++ {
		v := &liveView{width: 60 + rng.IntN(100), height: 5 + rng.IntN(30), rows: map[string]flash.Status{}}
		active := map[string]bool{}
		for i := rng.IntN(60); i > 0; i-- {
			st := flash.Status{Serial: fmt.Sprintf("tcp:10.0.0.%d:5554", i), State: flash.ResultOK}
			if rng.IntN(4) == 0 {
				st.State = flash.StateFlashing
				active[st.Serial] = true
			}
			v.Update(st)
		}
		if rng.IntN(2) == 0 {
			v.SetTally(flash.Tally{OK: 3})
		}
		lines := v.linesLocked()
		if len(lines) > v.height-1 {
			t.Fatalf("iter %d: %d lines on a %d-line terminal", iter, len(lines), v.height)
		}
		if len(active) <= v.height-4 {
			for s := range active {
				if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, s+" ") }) {
					t.Fatalf("iter %d: active %s not shown:\n%s", iter, s, strings.Join(lines, "\n"))
				}
			}
		}
	}
}
