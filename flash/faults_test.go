package flash_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash"
	"github.com/romforge/romforge/flash/emulator"
	"github.com/romforge/romforge/flash/fastboot"
	"github.com/romforge/romforge/flash/plan"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/sparse"
	"github.com/romforge/romforge/internal/failure"
)

// faultSeed fixes the 100 cases of TestHundredCutFlashes; a failure names it and the case index.
const faultSeed = 0x8f1a5b00c0ffee

// faultMaxDL is the emulated phones' max-download-size: small, so the raw boot image goes in several
// resparsed pieces and the sparse one in two.
const faultMaxDL = 256 << 10

// blocks makes n 4 KiB blocks of test data in runs of 1-8 blocks: random data, zeros, or one repeated
// word, so sparse encodings carry RAW and FILL chunks and raw images resparse into both.
func blocks(rng *rand.Rand, n int) []byte {
	b := make([]byte, n*4096)
	for i := 0; i < n; {
		run := b[i*4096 : min(i+1+rng.IntN(8), n)*4096]
		i += len(run) / 4096
		switch rng.IntN(4) {
		case 0: // zeros
		case 1:
			w := rng.Uint32()
			for j := 0; j < len(run); j += 4 {
				run[j], run[j+1], run[j+2], run[j+3] = byte(w), byte(w>>8), byte(w>>16), byte(w>>24)
			}
		default:
			for j := range run {
				run[j] = byte(rng.Uint32())
			}
		}
	}
	return b
}

// faultKit is one device's plan with its images and what a clean flash of it looks like.
type faultKit struct {
	dev    *devices.Device
	plan   *plan.Plan
	expect map[string][]byte // partition as flashed (with slot) → expanded image bytes
	total  int64             // bytes a whole flash downloads
	cuts   []string          // commands of a clean run a cut-after fault can hit
}

func lookup(t *testing.T, name string) *devices.Device {
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

// newKit writes the images (raw ones as they are, sparse ones through the sparse writer) and runs one
// clean flash to learn the download total and the command transcript.
func newKit(t *testing.T, codename string, rng *rand.Rand, images []kitImage) *faultKit {
	dir := t.TempDir()
	k := &faultKit{dev: lookup(t, codename), expect: map[string][]byte{}}
	var pairs []string
	for _, im := range images {
		data := blocks(rng, im.blocks)
		path := filepath.Join(dir, im.part+".img")
		if im.sparse {
			var buf bytes.Buffer
			if err := sparse.Write(context.Background(), &buf, image.New(bytes.NewReader(data), int64(len(data))), sparse.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, im.part+"="+path)
		part := im.part
		if k.dev.AB {
			part += "_b" // the emulator starts on slot a: the plan writes the other one
		}
		k.expect[part] = data
	}
	p, err := plan.PairsPlan(k.dev, pairs)
	if err != nil {
		t.Fatal(err)
	}
	k.plan = p

	r := startPhone(t, k, filepath.Join(dir, "reference"))
	defer r.stop()
	chk, err := flash.Preflight(context.Background(), r.dial(t), p, flash.PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.em.ResetTranscript()
	if err := flash.Run(context.Background(), r.dial(t), p, chk, flash.RunOptions{Reconnect: r.reconnect}); err != nil {
		t.Fatalf("clean flash of %s: %v", codename, err)
	}
	if msg := r.checkPartitions(k); msg != "" {
		t.Fatalf("clean flash of %s: %s", codename, msg)
	}
	sizeLine := regexp.MustCompile(`^   \[(\d+) bytes\]$`)
	for _, l := range r.em.Transcript() {
		if m := sizeLine.FindStringSubmatch(l); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			k.total += n
		}
		cmd, ok := strings.CutPrefix(l, "-> ")
		if !ok || strings.HasPrefix(cmd, "getvar:") || strings.HasPrefix(cmd, "set_active:") || cmd == "reboot" {
			continue
		}
		k.cuts = append(k.cuts, cmd)
	}
	if k.total == 0 || len(k.cuts) == 0 {
		t.Fatalf("clean flash of %s: no downloads seen in %q", codename, r.em.Transcript())
	}
	return k
}

type kitImage struct {
	part   string
	blocks int
	sparse bool
}

// phone is an emulator served on TCP loopback, with the connections opened to it.
type phone struct {
	em     *emulator.Device
	serial string
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	conns  []*fastboot.Client
}

func startPhone(t *testing.T, k *faultKit, stateDir string) *phone {
	em, err := emulator.New(k.dev, emulator.Options{StateDir: stateDir, MaxDownloadSize: faultMaxDL})
	if err != nil {
		t.Fatal(err)
	}
	l, err := fastboot.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &phone{em: em, serial: "tcp:" + l.Addr().String(), cancel: cancel, done: make(chan struct{})}
	go func() { em.ServeListener(ctx, l); close(p.done) }()
	return p
}

func (p *phone) connect(ctx context.Context) (*fastboot.Client, error) {
	tr, err := fastboot.Dial(ctx, p.serial)
	if err != nil {
		return nil, err
	}
	c := fastboot.NewClient(tr, fastboot.WithTimeout(10*time.Second))
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
	return c, nil
}

func (p *phone) dial(t *testing.T) *fastboot.Client {
	c, err := p.connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// reconnect is what the CLI does after reboot-fastboot: a fresh connection to the same address.
func (p *phone) reconnect(ctx context.Context) (flash.Device, error) { return p.connect(ctx) }

func (p *phone) stop() {
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.cancel()
	<-p.done
}

// checkPartitions compares every flashed partition file byte for byte with its expanded image; "" when
// all match.
func (p *phone) checkPartitions(k *faultKit) string {
	for part, want := range k.expect {
		got, err := os.ReadFile(p.em.PartitionPath(part))
		if err != nil {
			return fmt.Sprintf("partition %s: %v", part, err)
		}
		if len(got) < len(want) {
			return fmt.Sprintf("partition %s holds %d bytes, the image expands to %d", part, len(got), len(want))
		}
		if !bytes.Equal(got[:len(want)], want) {
			i := 0
			for i < len(want) && got[i] == want[i] {
				i++
			}
			return fmt.Sprintf("partition %s differs from its image at byte %d", part, i)
		}
	}
	return ""
}

// prefill puts an old ROM's bytes in every partition the plan writes, so a byte the flash fails to
// write shows up as a difference instead of a lucky zero.
func (p *phone) prefill(t *testing.T, k *faultKit) {
	for part, want := range k.expect {
		if err := os.WriteFile(p.em.PartitionPath(part), bytes.Repeat([]byte{0xa5}, len(want)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type journalFile struct {
	Done int `json:"done"`
}

// TestHundredCutFlashes is the fault test: 100 flashes through flash.Run over TCP, each hit by
// a fault (the cable cut after a random number of downloaded bytes, a partition that fails to write,
// or a cut after the phone carried out a command but before it answered). The first run must fail with
// an I/O error that names --resume; the resumed run, on a fresh connection, must leave every partition
// exactly equal to its expanded image, with set_active and reboot sent once, after every write.
func TestHundredCutFlashes(t *testing.T) {
	rng := rand.New(rand.NewPCG(faultSeed, faultSeed>>1))
	ab := newKit(t, "alioth", rng, []kitImage{
		{part: "boot", blocks: 176},                // raw, 704 KiB: resparsed into pieces
		{part: "dtbo", blocks: 112, sparse: true},  // sparse, over max-download-size: split
		{part: "vendor", blocks: 40, sparse: true}, // logical: flashed from fastbootd
	})
	aonly := newKit(t, "armani", rng, []kitImage{
		{part: "boot", blocks: 144},                  // raw, split
		{part: "recovery", blocks: 48, sparse: true}, // sparse, one download
		{part: "system", blocks: 24},                 // raw, one download
	})
	root := t.TempDir()
	for i := 0; i < 100; i++ {
		k := ab
		if i%4 == 3 {
			k = aonly
		}
		var f emulator.Fault
		var kind string
		switch i % 10 {
		case 8:
			parts := k.plan.Steps
			f.FailFlash = parts[rng.IntN(len(parts)-1)].Partition // the last step is the reboot
			kind = "fail-flash=" + f.FailFlash
		case 9:
			f.CutAfter = k.cuts[rng.IntN(len(k.cuts))]
			kind = "cut-after=" + f.CutAfter
		default:
			f.DropAfter = 1 + rng.Int64N(k.total-1)
			kind = fmt.Sprintf("drop-after=%d", f.DropAfter)
		}
		if msg := cutFlash(t, k, filepath.Join(root, strconv.Itoa(i)), f); msg != "" {
			t.Errorf("seed %#x case %d (%s, %s): %s", uint64(faultSeed), i, k.dev.Codename, kind, msg)
		}
	}
}

// cutFlash runs one faulted flash and its resume; it returns what went wrong, or "".
func cutFlash(t *testing.T, k *faultKit, dir string, f emulator.Fault) string {
	ctx := context.Background()
	p := startPhone(t, k, filepath.Join(dir, "state"))
	defer p.stop()
	p.prefill(t, k)
	journal := filepath.Join(dir, "journal.json")

	c, err := p.connect(ctx)
	if err != nil {
		return err.Error()
	}
	chk, err := flash.Preflight(ctx, c, k.plan, flash.PreflightOptions{})
	if err != nil {
		return "pre-flight: " + err.Error()
	}
	p.em.SetFault(f)
	err = flash.Run(ctx, c, k.plan, chk, flash.RunOptions{Journal: journal, Reconnect: p.reconnect})
	first := p.em.Transcript()
	if err == nil && strings.HasPrefix(f.CutAfter, "reboot") && hasLinePrefix(first, "   [connection cut") {
		// A reboot closes the connection by nature, so a cut before its OKAY is no failure: the client
		// goes on after reconnecting and checking the mode. That is only right if the result is.
		return checkFinal(p, k, first)
	}
	switch {
	case err == nil:
		return "the faulted flash reported success"
	case !errors.Is(err, failure.ErrIO):
		return fmt.Sprintf("the faulted flash failed with %v, not an I/O failure (exit 5)", err)
	case !strings.Contains(err.Error(), "--resume"):
		return fmt.Sprintf("the error does not say that --resume continues: %v", err)
	}
	var why, mark string
	switch {
	case f.DropAfter > 0:
		why, mark = "closed the connection", "   [connection dropped by fault injection]"
	case f.CutAfter != "":
		why, mark = "closed the connection", "   [connection cut by fault injection before the reply]"
	default:
		why, mark = "(injected)", "<- FAIL"
	}
	if !strings.Contains(err.Error(), why) {
		return fmt.Sprintf("the error does not say what happened (%q): %v", why, err)
	}
	if !hasLinePrefix(first, mark) {
		return fmt.Sprintf("the fault never fired (no %q in the transcript), yet the flash failed: %v", mark, err)
	}
	b, rerr := os.ReadFile(journal)
	var j journalFile
	if rerr != nil || json.Unmarshal(b, &j) != nil {
		return fmt.Sprintf("no journal after the failed flash: %v", rerr)
	}
	if j.Done >= len(chk.Commands) {
		return fmt.Sprintf("the journal says %d of %d commands are done after a failure", j.Done, len(chk.Commands))
	}
	for _, l := range first {
		if strings.HasPrefix(l, "-> set_active") || l == "-> reboot" {
			return "the failed run changed the active slot or rebooted: " + l
		}
	}

	// The cable is back: a fresh connection, identity re-checked by a new pre-flight, then --resume.
	p.em.SetFault(emulator.Fault{})
	c2, err := p.connect(ctx)
	if err != nil {
		return err.Error()
	}
	chk2, err := flash.Preflight(ctx, c2, k.plan, flash.PreflightOptions{})
	if err != nil {
		return "pre-flight before resume: " + err.Error()
	}
	if err := flash.Run(ctx, c2, k.plan, chk2, flash.RunOptions{Journal: journal, Resume: true, Reconnect: p.reconnect}); err != nil {
		return fmt.Sprintf("resume (journal at %d of %d) failed: %v", j.Done, len(chk.Commands), err)
	}
	if _, err := os.Stat(journal); !errors.Is(err, os.ErrNotExist) {
		return "the journal is left after a successful resume"
	}
	all := p.em.Transcript()
	resumed := all[len(first):]
	// Commands the journal counts as done are not sent again.
	for i, cmd := range chk.Commands[:j.Done] {
		if cmd.Op == plan.OpFlash && hasLinePrefix(resumed, "-> flash:"+cmd.Partition) {
			return fmt.Sprintf("resume flashed %s again although the journal had command %d done", cmd.Partition, i+1)
		}
	}
	if msg := checkFinal(p, k, all); msg != "" {
		return "after resume: " + msg
	}
	return ""
}

// checkFinal checks a finished flash: every partition equal to its image, set_active once after the
// last write (A/B), one reboot, last.
func checkFinal(p *phone, k *faultKit, all []string) string {
	if msg := p.checkPartitions(k); msg != "" {
		return msg
	}
	lastWrite, setActive, reboots, lastCmd := -1, []int{}, []int{}, ""
	for i, l := range all {
		switch {
		case strings.HasPrefix(l, "-> flash:"), strings.HasPrefix(l, "-> erase:"), strings.HasPrefix(l, "-> resize-logical-partition:"):
			lastWrite = i
		case strings.HasPrefix(l, "-> set_active"):
			setActive = append(setActive, i)
		case l == "-> reboot":
			reboots = append(reboots, i)
		}
		if strings.HasPrefix(l, "-> ") {
			lastCmd = l
		}
	}
	if k.dev.AB {
		if len(setActive) != 1 || setActive[0] < lastWrite || p.em.CurrentSlot() != "b" {
			return fmt.Sprintf("set_active sent %d times (want once, after the last write at line %d: %v); slot now %q", len(setActive), lastWrite, setActive, p.em.CurrentSlot())
		}
	}
	if len(reboots) != 1 || lastCmd != "-> reboot" {
		return fmt.Sprintf("reboot sent %d times, last command %q (want one reboot, last)", len(reboots), lastCmd)
	}
	return ""
}

func hasLinePrefix(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}
