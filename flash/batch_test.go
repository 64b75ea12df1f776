package flash_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash"
	"github.com/romforge/romforge/flash/emulator"
	"github.com/romforge/romforge/flash/fastboot"
	"github.com/romforge/romforge/flash/plan"
	"github.com/romforge/romforge/internal/failure"
)

func TestNormalizeSerial(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"tcp:127.0.0.1", "tcp:127.0.0.1:5554"},
		{"udp:10.0.0.2:6000", "udp:10.0.0.2:6000"},
		{" usb:0123abcd ", "0123abcd"},
		{"0123abcd", "0123abcd"},
		{"tcp:[::1]:7000", "tcp:[::1]:7000"},
		{"usb:1-2.3", "usb:1-2.3"}, // a port, as fastboot devices -l prints: kept
		{"usb:3-11", "usb:3-11"},
	} {
		got, err := flash.NormalizeSerial(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%q → %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "usb:", "tcp:", "udp:host:0", "tcp:host:99999", "two words", "usb:a:b"} {
		if _, err := flash.NormalizeSerial(bad); !errors.Is(err, failure.ErrUsage) {
			t.Errorf("%q: err %v, want a usage error", bad, err)
		}
	}
}

// randomSerial makes a serial of any transport, and the form it normalizes to.
func randomSerial(rng *rand.Rand) (given, norm string) {
	port := 1 + rng.IntN(65535)
	host := fmt.Sprintf("10.%d.%d.%d", rng.IntN(256), rng.IntN(256), rng.IntN(256))
	switch rng.IntN(4) {
	case 0:
		return fmt.Sprintf("tcp:%s:%d", host, port), fmt.Sprintf("tcp:%s:%d", host, port)
	case 1:
		return "udp:" + host, "udp:" + host + ":5554"
	case 2:
		s := fmt.Sprintf("%08x", rng.Uint32())
		return "usb:" + s, s
	}
	s := fmt.Sprintf("%x", rng.Uint64())
	return s, s
}

// Property: whatever mix of --serial values, comma lists and serials-file lines (with comments and
// blanks) names a set of phones, Targets returns each once, normalized, in first-seen order.
func TestTargetsProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 1))
	for iter := 0; iter < 200; iter++ {
		var want, flags, lines []string
		seen := map[string]bool{}
		add := func(norm string) {
			if !seen[norm] {
				seen[norm] = true
				want = append(want, norm)
			}
		}
		for i := rng.IntN(4); i > 0; i-- {
			var group []string
			for j := 1 + rng.IntN(3); j > 0; j-- {
				g, n := randomSerial(rng)
				group = append(group, g)
				add(n)
			}
			flags = append(flags, strings.Join(group, ","))
		}
		for i := rng.IntN(5); i > 0; i-- {
			g, n := randomSerial(rng)
			switch rng.IntN(3) {
			case 0:
				lines = append(lines, "", "# a comment")
			case 1:
				g = "  " + g + "  # bench 3"
			}
			lines = append(lines, g)
			add(n)
		}
		var usb []string
		for i := rng.IntN(3); i > 0; i-- {
			_, n := randomSerial(rng)
			n = strings.TrimPrefix(strings.TrimPrefix(n, "tcp:"), "udp:") // USB listings are bare serials
			n = strings.ReplaceAll(n, ":", "")
			usb = append(usb, n)
			add(n)
		}
		file := filepath.Join(t.TempDir(), "serials")
		os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o644)
		got, err := flash.Targets(context.Background(), flash.TargetOptions{Serials: flags, SerialsFile: file, All: true,
			ListUSB: func(context.Context) ([]string, error) { return usb, nil }})
		if err != nil {
			t.Fatalf("iter %d: %v", iter, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("iter %d: flags %q lines %q usb %q\ngot  %q\nwant %q", iter, flags, lines, usb, got, want)
		}
	}
}

func TestSerialsFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("tcp:1.2.3.4\n\ntcp:host:0\n"), 0o644)
	if _, err := flash.ReadSerialsFile(bad); !errors.Is(err, failure.ErrUsage) || !strings.Contains(err.Error(), bad+":3") {
		t.Errorf("bad line: %v", err)
	}
	huge := filepath.Join(dir, "huge")
	os.WriteFile(huge, make([]byte, 2<<20), 0o644)
	if _, err := flash.ReadSerialsFile(huge); !errors.Is(err, failure.ErrUsage) {
		t.Errorf("huge file: %v", err)
	}
	if _, err := flash.ReadSerialsFile(filepath.Join(dir, "missing")); !errors.Is(err, failure.ErrUsage) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := flash.Targets(context.Background(), flash.TargetOptions{All: true}); !errors.Is(err, failure.ErrIO) {
		t.Errorf("--all without USB listing: %v", err)
	}
}

// batchPhone is an emulated phone served over TCP or UDP on loopback.
type batchPhone struct {
	em     *emulator.Device
	serial string
}

func serveBatchPhone(t *testing.T, codename, network string, opt emulator.Options) batchPhone {
	t.Helper()
	opt.StateDir = t.TempDir()
	em, err := emulator.New(lookup(t, codename), opt)
	if err != nil {
		t.Fatal(err)
	}
	var l fastboot.Listener
	if network == "udp" {
		l, err = fastboot.ListenUDP("127.0.0.1:0", 0)
	} else {
		l, err = fastboot.ListenTCP("127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { em.ServeListener(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); l.Close(); <-done })
	return batchPhone{em: em, serial: network + ":" + l.Addr().String()}
}

func dialBatch(ctx context.Context, serial string) (flash.Device, io.Closer, error) {
	tr, err := fastboot.Dial(ctx, serial)
	if err != nil {
		return nil, nil, err
	}
	c := fastboot.NewClient(tr, fastboot.WithTimeout(10*time.Second))
	return c, c, nil
}

// pairsCandidate is a small plan for a device: a boot and a system image of random blocks.
func pairsCandidate(t *testing.T, codename string, rng *rand.Rand) flash.Candidate {
	t.Helper()
	dir := t.TempDir()
	var pairs []string
	for _, part := range []string{"boot", "system"} {
		path := filepath.Join(dir, part+".img")
		if err := os.WriteFile(path, blocks(rng, 8+rng.IntN(16)), 0o644); err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, part+"="+path)
	}
	p, err := plan.PairsPlan(lookup(t, codename), pairs)
	if err != nil {
		t.Fatal(err)
	}
	return flash.Candidate{Name: codename, Plan: p}
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "tcp:" + addr
}

// TestBatchMixedPhones: phones of three models over TCP and UDP, one locked, one with no plan for its
// model, one unreachable: each gets the plan for its product, and every outcome is its own row with
// its reasons, its transcript and the right overall error.
func TestBatchMixedPhones(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cands := []flash.Candidate{pairsCandidate(t, "armani", rng), pairsCandidate(t, "lavender", rng)}
	armTCP := serveBatchPhone(t, "armani", "tcp", emulator.Options{})
	lavUDP := serveBatchPhone(t, "lavender", "udp", emulator.Options{})
	locked := serveBatchPhone(t, "armani", "udp", emulator.Options{Locked: true})
	other := serveBatchPhone(t, "ginkgo", "tcp", emulator.Options{})
	gone := closedPort(t)
	logs := t.TempDir()
	cat, _ := devices.Builtin()
	var mu sync.Mutex
	states := map[string][]string{}
	opt := flash.BatchOptions{Dial: dialBatch, LogDir: logs, Catalog: cat, Observe: func(s flash.Status) {
		mu.Lock()
		defer mu.Unlock()
		if l := states[s.Serial]; len(l) == 0 || l[len(l)-1] != s.State {
			states[s.Serial] = append(l, s.State)
		}
	}}
	serials := []string{armTCP.serial, lavUDP.serial, locked.serial, other.serial, gone}
	sum := flash.Batch(context.Background(), serials, cands, opt)
	want := []string{flash.ResultOK, flash.ResultOK, flash.ResultRefused, flash.ResultSkipped, flash.ResultFailed}
	for i, r := range sum.Phones {
		if r.Serial != serials[i] || r.State != want[i] {
			t.Errorf("phone %d (%s): %s %q, want %s", i, serials[i], r.State, r.Reasons, want[i])
		}
		if _, err := os.Stat(filepath.Join(logs, flash.LogName(r.Serial))); err != nil {
			t.Errorf("%s: no transcript: %v", r.Serial, err)
		}
	}
	if sum.OK != 2 || sum.Refused != 1 || sum.Skipped != 1 || sum.Failed != 1 {
		t.Errorf("tally %+v", sum)
	}
	if r := sum.Phones[1]; r.Bundle != "lavender" || r.Model == "" || r.Transport != "udp" || r.Written == 0 {
		t.Errorf("lavender row: %+v", r)
	}
	if r := sum.Phones[2]; r.Written != 0 || locked.em.Writes() != 0 || !strings.Contains(strings.Join(r.Reasons, " "), "locked") {
		t.Errorf("locked row: %+v, emulator writes %d", r, locked.em.Writes())
	}
	if r := sum.Phones[3]; !slices.Equal(r.Reasons, []string{"no bundle for ginkgo"}) || other.em.Writes() != 0 {
		t.Errorf("skipped row: %+v", r)
	}
	if armTCP.em.Writes() == 0 || lavUDP.em.Writes() == 0 {
		t.Errorf("writes: armani %d, lavender %d", armTCP.em.Writes(), lavUDP.em.Writes())
	}
	if !errors.Is(sum.Err(), failure.ErrIO) {
		t.Errorf("with a failure: %v", sum.Err())
	}
	mu.Lock()
	if s := states[armTCP.serial]; !slices.Contains(s, flash.StateFlashing) || s[len(s)-1] != flash.ResultOK {
		t.Errorf("armani states seen: %q", s)
	}
	mu.Unlock()
	b, _ := os.ReadFile(filepath.Join(logs, flash.LogName(locked.serial)))
	if !strings.Contains(string(b), "result: refused") || !strings.Contains(string(b), "locked") {
		t.Errorf("locked phone's transcript:\n%s", b)
	}

	// Without the unreachable phone: refused and none failed is a refusal (exit 3); all ok/skipped is nil.
	s2 := &flash.Summary{}
	for _, r := range sum.Phones[:4] {
		s2.Add(r)
	}
	if !errors.Is(s2.Err(), failure.ErrRefused) || errors.Is(s2.Err(), failure.ErrIO) {
		t.Errorf("refused only: %v", s2.Err())
	}
	s3 := &flash.Summary{}
	s3.Add(sum.Phones[0])
	s3.Add(sum.Phones[3])
	if s3.Err() != nil {
		t.Errorf("ok and skipped: %v", s3.Err())
	}
}

// TestStationFlashesEachAppearanceOnce: a phone added to the watched serials file is flashed once;
// it stays there and is not flashed again; removed and added back, it is flashed again.
func TestStationFlashesEachAppearanceOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	cands := []flash.Candidate{pairsCandidate(t, "armani", rng)}
	ph := serveBatchPhone(t, "armani", "tcp", emulator.Options{})
	file := filepath.Join(t.TempDir(), "serials")
	os.WriteFile(file, []byte("# bench\n"), 0o644)
	results := make(chan flash.Tally, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *flash.Summary)
	go func() {
		done <- flash.Station(ctx, flash.StationOptions{
			Batch: flash.BatchOptions{Dial: dialBatch}, Candidates: cands, SerialsFile: file,
			Poll:     20 * time.Millisecond,
			OnResult: func(_ flash.Status, tl flash.Tally) { results <- tl },
		})
	}()
	wait := func(want int) {
		t.Helper()
		select {
		case tl := <-results:
			if tl.OK != want {
				t.Fatalf("tally %+v, want %d ok", tl, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no result for flash %d", want)
		}
	}
	os.WriteFile(file, []byte("# bench\n"+ph.serial+"\n"), 0o644)
	wait(1)
	flashes := ph.em.Stats().Flashes
	time.Sleep(200 * time.Millisecond) // ten polls with the phone still listed
	if n := ph.em.Stats().Flashes; n != flashes || len(results) != 0 {
		t.Fatalf("flashed again while still plugged in: %d → %d flashes", flashes, n)
	}
	os.WriteFile(file, []byte("# bench\n"), 0o644)
	time.Sleep(100 * time.Millisecond)
	os.WriteFile(file, []byte(ph.serial+"\n"), 0o644)
	wait(2)
	cancel()
	sum := <-done
	if sum.OK != 2 || len(sum.Phones) != 2 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestStationRetriesUnreachableNetworkPhone(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	cands := []flash.Candidate{pairsCandidate(t, "armani", rng)}
	serial := closedPort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var warns []string
	sum := flash.Station(ctx, flash.StationOptions{Batch: flash.BatchOptions{Dial: dialBatch}, Candidates: cands,
		Serials: []string{serial}, Poll: 20 * time.Millisecond, Warn: func(s string) { warns = append(warns, s) }})
	if len(sum.Phones) != 0 || len(warns) != 1 || !strings.Contains(warns[0], "not reachable") {
		t.Fatalf("results %+v, warnings %q", sum.Phones, warns)
	}
}

// TestStationUSBHotplug: a USB phone is flashed when it shows up, not again while it stays, and again
// after it was unplugged and plugged back.
func TestStationUSBHotplug(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	cands := []flash.Candidate{pairsCandidate(t, "armani", rng)}
	ph := serveBatchPhone(t, "armani", "tcp", emulator.Options{})
	var mu sync.Mutex
	plugged := false
	setPlugged := func(b bool) { mu.Lock(); plugged = b; mu.Unlock() }
	list := func(context.Context) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		if plugged {
			return []string{"0123abcd"}, nil
		}
		return nil, nil
	}
	// The "USB" phone is the emulator behind a serial number.
	dial := func(ctx context.Context, serial string) (flash.Device, io.Closer, error) {
		if serial != "0123abcd" {
			return nil, nil, fmt.Errorf("no USB phone %s", serial)
		}
		return dialBatch(ctx, ph.serial)
	}
	results := make(chan flash.Status, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *flash.Summary)
	go func() {
		done <- flash.Station(ctx, flash.StationOptions{Batch: flash.BatchOptions{Dial: dial}, Candidates: cands,
			ListUSB: list, Poll: 20 * time.Millisecond, OnResult: func(s flash.Status, _ flash.Tally) { results <- s }})
	}()
	next := func() flash.Status {
		t.Helper()
		select {
		case s := <-results:
			return s
		case <-time.After(20 * time.Second):
			t.Fatal("no result")
		}
		return flash.Status{}
	}
	setPlugged(true)
	if s := next(); s.State != flash.ResultOK || s.Transport != "usb" || s.Serial != "0123abcd" {
		t.Fatalf("first plug: %+v", s)
	}
	time.Sleep(200 * time.Millisecond)
	if len(results) != 0 {
		t.Fatal("flashed twice while plugged in")
	}
	setPlugged(false)
	time.Sleep(100 * time.Millisecond)
	setPlugged(true)
	if s := next(); s.State != flash.ResultOK {
		t.Fatalf("re-plug: %+v", s)
	}
	cancel()
	if sum := <-done; sum.OK != 2 {
		t.Fatalf("summary %+v", sum)
	}
}

// One phone reached under two names is flashed once: the second name is refused, not a second
// concurrent writer.
func TestBatchSamePhoneTwoNames(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 15))
	cands := []flash.Candidate{pairsCandidate(t, "armani", rng)}
	ph := serveBatchPhone(t, "armani", "tcp", emulator.Options{})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(ph.serial, "tcp:"))
	other := "tcp:localhost:" + port
	sum := flash.Batch(context.Background(), []string{ph.serial, other}, cands, flash.BatchOptions{Dial: dialBatch})
	if sum.OK != 1 || sum.Refused != 1 {
		t.Fatalf("%+v", sum.Phones)
	}
	for _, r := range sum.Phones {
		if r.State == flash.ResultRefused && (r.Written != 0 || !strings.Contains(strings.Join(r.Reasons, " "), "also listed as")) {
			t.Fatalf("refused row %+v", r)
		}
	}
	if n := ph.em.Stats().Flashes; n != 2 { // boot and system, once
		t.Fatalf("%d flash commands, want 2", n)
	}
}

// located is a connection that knows its phone's USB port, as usb.Device does.
type located struct {
	*fastboot.Client
	loc string
}

func (l located) Location() string { return l.loc }

// Phones that share a serialno (factory images with a fixed one) are different phones when they sit on
// different USB ports: each is flashed. Without ports to tell them apart, or on the same port, the second
// name is refused as the same phone listed twice.
func TestBatchSharedSerialno(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 17))
	cands := []flash.Candidate{pairsCandidate(t, "armani", rng)}
	for _, tc := range []struct {
		name       string
		locs       [2]string
		ok, refuse int
	}{
		{"two ports", [2]string{"usb:1-2", "usb:1-3"}, 2, 0},
		{"one port", [2]string{"usb:1-2", "usb:1-2"}, 1, 1},
		{"no ports", [2]string{"", ""}, 1, 1},
		{"one port unknown", [2]string{"usb:1-2", ""}, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := serveBatchPhone(t, "armani", "tcp", emulator.Options{Serial: "0123456789ABCDEF"})
			b := serveBatchPhone(t, "armani", "tcp", emulator.Options{Serial: "0123456789ABCDEF"})
			loc := map[string]string{a.serial: tc.locs[0], b.serial: tc.locs[1]}
			dial := func(ctx context.Context, serial string) (flash.Device, io.Closer, error) {
				d, c, err := dialBatch(ctx, serial)
				if err != nil {
					return nil, nil, err
				}
				return located{d.(*fastboot.Client), loc[serial]}, c, nil
			}
			sum := flash.Batch(context.Background(), []string{a.serial, b.serial}, cands, flash.BatchOptions{Dial: dial})
			if sum.OK != tc.ok || sum.Refused != tc.refuse {
				t.Fatalf("ok %d refused %d, want %d and %d: %+v", sum.OK, sum.Refused, tc.ok, tc.refuse, sum.Phones)
			}
			flashes := a.em.Stats().Flashes + b.em.Stats().Flashes
			if flashes != 2*tc.ok { // boot and system per phone flashed
				t.Fatalf("%d flash commands for %d phones flashed", flashes, tc.ok)
			}
			for _, r := range sum.Phones {
				if r.State == flash.ResultRefused && (r.Written != 0 || !strings.Contains(strings.Join(r.Reasons, " "), "also listed as")) {
					t.Fatalf("refused row %+v", r)
				}
			}
		})
	}
}

// With Parallel N, no more than N phones are past waiting at any moment, and every phone is flashed.
func TestBatchParallelLimit(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 19))
	cands := []flash.Candidate{pairsCandidate(t, "armani", rng)}
	var serials []string
	for range 5 {
		serials = append(serials, serveBatchPhone(t, "armani", "tcp", emulator.Options{}).serial)
	}
	var mu sync.Mutex
	state := map[string]string{}
	most := 0
	observe := func(st flash.Status) {
		mu.Lock()
		defer mu.Unlock()
		state[st.Serial] = st.State
		active := 0
		for _, s := range state {
			if s != flash.StateWaiting && !(flash.Status{State: s}).Finished() {
				active++
			}
		}
		most = max(most, active)
	}
	sum := flash.Batch(context.Background(), serials, cands, flash.BatchOptions{Dial: dialBatch, Parallel: 2, Observe: observe})
	if sum.OK != len(serials) {
		t.Fatalf("%+v", sum.Phones)
	}
	if most > 2 || most == 0 {
		t.Fatalf("at most %d phones active at once, want 1 or 2", most)
	}
	t.Logf("at most %d of %d phones active at once", most, len(serials))
}
