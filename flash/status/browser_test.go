package status

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash"
	"github.com/romforge/romforge/flash/emulator"
	"github.com/romforge/romforge/flash/fastboot"
	"github.com/romforge/romforge/flash/plan"
)

func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// servePhone serves an emulated phone on TCP loopback whose downloads are slowed to rate bytes/s, so
// that its flashing lasts long enough for a page to see it.
func servePhone(t *testing.T, d *devices.Device, rate float64) string {
	em, err := emulator.New(d, emulator.Options{StateDir: t.TempDir(), Fault: emulator.Fault{Rate: rate}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := fastboot.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { em.ServeListener(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); l.Close(); <-done })
	return "tcp:" + l.Addr().String()
}

// TestStatusPageInChromium opens the status page in headless Chromium, flashes three emulated phones
// of two models, and checks from inside the page that every phone's row went from flashing to ok.
func TestStatusPageInChromium(t *testing.T) {
	exe := findChromium()
	if exe == "" {
		t.Skip("no chromium on PATH (Debian: apt-get install chromium; scripts/install-validators.sh installs it)")
	}
	cat, err := devices.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	var cands []flash.Candidate
	var serials []string
	for _, code := range []string{"armani", "lavender", "armani"} {
		d, err := cat.Lookup(code)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(cands, func(c flash.Candidate) bool { return c.Name == code }) {
			img := filepath.Join(t.TempDir(), "boot.img")
			data := make([]byte, 96<<10)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			os.WriteFile(img, data, 0o644)
			p, err := plan.PairsPlan(d, []string{"boot=" + img})
			if err != nil {
				t.Fatal(err)
			}
			cands = append(cands, flash.Candidate{Name: code, Plan: p})
		}
		serials = append(serials, servePhone(t, d, 128<<10)) // ~0.75 s per phone
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	board := NewBoard("test bench")
	addr, _, err := Serve(ctx, "127.0.0.1:0", board)
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	// Phones start flashing only once the page is live, so it can see every row's whole life.
	if err := chromedp.Do(bctx,
		chromedp.Navigate("http://"+addr+"/"),
		chromedp.WaitVisible(chromedp.ID("rows")),
		chromedp.Poll[chromedp.Void](`document.getElementById("conn").textContent === "live"`, chromedp.WithPollingTimeout(20*time.Second)),
	); err != nil {
		t.Fatalf("opening the page: %v", err)
	}

	dial := func(ctx context.Context, serial string) (flash.Device, io.Closer, error) {
		tr, err := fastboot.Dial(ctx, serial)
		if err != nil {
			return nil, nil, err
		}
		c := fastboot.NewClient(tr, fastboot.WithTimeout(10*time.Second))
		return c, c, nil
	}
	sum := flash.Batch(ctx, serials, cands, flash.BatchOptions{Dial: dial, Catalog: cat, Observe: board.Update})
	if sum.OK != 3 {
		t.Fatalf("batch: %+v", sum.Phones)
	}
	board.SetTally(flash.Tally{OK: sum.OK})

	err = chromedp.Do(bctx,
		chromedp.Poll[chromedp.Void](`document.getElementById("t-ok").textContent === "ok 3"`, chromedp.WithPollingTimeout(20*time.Second)))
	var seen map[string][]string
	if err == nil {
		seen, err = chromedp.Run(bctx, chromedp.Evaluate[map[string][]string](`window.__seen`))
	}
	if err != nil {
		t.Fatalf("waiting for the page to show 3 ok: %v (seen %v)", err, seen)
	}
	for _, s := range serials {
		states := seen[s]
		if len(states) == 0 || !slices.Contains(states, flash.StateFlashing) || states[len(states)-1] != flash.ResultOK {
			t.Errorf("%s: the page showed %q, want flashing then ok", s, states)
		}
	}
	okRows, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('#rows tr[data-state="ok"]').length`))
	if err != nil {
		t.Fatal(err)
	}
	if okRows != 3 {
		t.Errorf("%d rows show ok, want 3", okRows)
	}
}
