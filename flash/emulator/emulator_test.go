package emulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash/fastboot"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
)

func catalogDevice(t testing.TB, name string) *devices.Device {
	t.Helper()
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

// start runs an emulator of codename on loopback and returns it with its serial ("tcp:…"/"udp:…").
func start(t testing.TB, codename, network string, opt Options) (*Device, string) {
	t.Helper()
	if opt.StateDir == "" {
		opt.StateDir = t.TempDir()
	}
	d, err := New(catalogDevice(t, codename), opt)
	if err != nil {
		t.Fatal(err)
	}
	return d, serve(t, d, network)
}

func serve(t testing.TB, d *Device, network string) string {
	t.Helper()
	var l fastboot.Listener
	var err error
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
	go func() { d.ServeListener(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return network + ":" + l.Addr().String()
}

func dial(t testing.TB, serial string) *fastboot.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := fastboot.Dial(ctx, serial)
	if err != nil {
		t.Fatal(err)
	}
	c := fastboot.NewClient(tr, fastboot.WithTimeout(10*time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

func sameFile(t *testing.T, got, want string) {
	t.Helper()
	a, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("%s (%d bytes) differs from %s (%d bytes)", got, len(a), want, len(b))
	}
}

// aosp runs the real fastboot client and returns its output and exit code.
func aosp(t *testing.T, serial string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "fastboot", append([]string{"-s", serial}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("fastboot %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

func mustAOSP(t *testing.T, serial string, args ...string) string {
	t.Helper()
	out, code := aosp(t, serial, args...)
	if code != 0 {
		t.Fatalf("fastboot %v: exit %d\n%s", args, code, out)
	}
	return out
}

// TestAOSPClient drives the emulator with the real AOSP fastboot client over TCP and UDP.
func TestAOSPClient(t *testing.T) {
	validators.Tool(t, "fastboot")
	simg2img := validators.Tool(t, "simg2img")
	fx := validators.Fixtures(t)
	for _, network := range []string{"tcp", "udp"} {
		t.Run(network, func(t *testing.T) {
			d, serial := start(t, "alioth", network, Options{MaxDownloadSize: 0x100000})
			if out := mustAOSP(t, serial, "getvar", "product"); !strings.Contains(out, "product: alioth") {
				t.Fatalf("getvar product: %s", out)
			}
			out := mustAOSP(t, serial, "getvar", "all")
			for _, want := range []string{"(bootloader) product:alioth", "(bootloader) partition-size:boot_a:0xc000000",
				"(bootloader) has-slot:boot:yes", "(bootloader) anti:1", "(bootloader) max-download-size:0x100000"} {
				if !strings.Contains(out, want) {
					t.Fatalf("getvar all lacks %q:\n%s", want, out)
				}
			}

			// A sparse image bigger than max-download-size: the client re-splits it into 7 pieces.
			mustAOSP(t, serial, "flash", "boot", filepath.Join(fx, "sparse/big.sparse.img"))
			expanded := filepath.Join(t.TempDir(), "big.expanded")
			validators.Run(t, simg2img, filepath.Join(fx, "sparse/big.sparse.img"), expanded)
			sameFile(t, d.PartitionPath("boot_a"), expanded)
			if n := strings.Count(strings.Join(d.Transcript(), "\n"), "-> flash:boot_a"); n != 7 {
				t.Fatalf("%d flash commands for 7 sparse pieces", n)
			}

			// A raw image bigger than max-download-size is resparsed by the client.
			mustAOSP(t, serial, "flash", "dtbo", filepath.Join(fx, "sparse/pattern.raw"))
			sameFile(t, d.PartitionPath("dtbo_a"), filepath.Join(fx, "sparse/pattern.raw"))
			mustAOSP(t, serial, "--slot", "b", "flash", "boot", filepath.Join(fx, "sparse/odd.sparse.img"))
			oddExpanded := filepath.Join(t.TempDir(), "odd.expanded")
			validators.Run(t, simg2img, filepath.Join(fx, "sparse/odd.sparse.img"), oddExpanded)
			sameFile(t, d.PartitionPath("boot_b"), oddExpanded)

			mustAOSP(t, serial, "erase", "dtbo")
			if st, err := os.Stat(d.PartitionPath("dtbo_a")); err != nil || st.Size() != 0 {
				t.Fatalf("erase left %v %v", st.Size(), err)
			}

			mustAOSP(t, serial, "flash", "vbmeta", "--disable-verity", "--disable-verification", filepath.Join(fx, "avb/vbmeta-unsigned.img"))
			sameFile(t, d.PartitionPath("vbmeta_a"), filepath.Join(fx, "avb/vbmeta-disabled.img"))

			mustAOSP(t, serial, "set_active", "b")
			if d.CurrentSlot() != "b" {
				t.Fatalf("slot %q after set_active b", d.CurrentSlot())
			}
			mustAOSP(t, serial, "set_active", "a")

			mustAOSP(t, serial, "reboot", "bootloader")
			mustAOSP(t, serial, "reboot")
			if d.Userspace() {
				t.Fatal("in fastbootd after reboot")
			}

			// fastbootd: the client reconnects after reboot-fastboot and checks is-userspace.
			mustAOSP(t, serial, "reboot", "fastboot")
			if !d.Userspace() {
				t.Fatal("not in fastbootd after reboot fastboot")
			}
			mustAOSP(t, serial, "flash", "system", filepath.Join(fx, "sparse/pattern.sparse.img"))
			sameFile(t, d.PartitionPath("system_a"), filepath.Join(fx, "sparse/pattern.raw"))
			mustAOSP(t, serial, "create-logical-partition", "scratch", "8192")
			mustAOSP(t, serial, "resize-logical-partition", "scratch", "16384")
			if out := mustAOSP(t, serial, "getvar", "partition-size:scratch"); !strings.Contains(out, "0x4000") {
				t.Fatalf("scratch size: %s", out)
			}
			mustAOSP(t, serial, "flash", "scratch", filepath.Join(fx, "sparse/odd.raw"))
			sameFile(t, d.PartitionPath("scratch"), filepath.Join(fx, "sparse/odd.raw"))
			mustAOSP(t, serial, "delete-logical-partition", "scratch")
			mustAOSP(t, serial, "reboot", "bootloader")
			if d.Userspace() {
				t.Fatal("still in fastbootd after reboot bootloader")
			}
			// Logical partitions are invisible to the bootloader.
			if _, code := aosp(t, serial, "flash", "system", filepath.Join(fx, "sparse/odd.raw")); code != 1 {
				t.Fatal("bootloader flashed a logical partition")
			}

			// Staged data comes back with get_staged.
			staged := filepath.Join(t.TempDir(), "staged")
			mustAOSP(t, serial, "stage", filepath.Join(fx, "sparse/odd.raw"))
			mustAOSP(t, serial, "get_staged", staged)
			sameFile(t, staged, filepath.Join(fx, "sparse/odd.raw"))

			// TEXT-free replies only: v29 would reject TEXT; FAIL is reported with exit 1.
			if out, code := aosp(t, serial, "oem", "frobnicate"); code != 1 || !strings.Contains(out, "unknown command") {
				t.Fatalf("oem frobnicate: exit %d\n%s", code, out)
			}
			if out := mustAOSP(t, serial, "oem", "device-info"); !strings.Contains(out, "(bootloader) Device unlocked: true") {
				t.Fatalf("oem device-info: %s", out)
			}
		})
	}
}

// A locked phone refuses every write, and the write counter proves nothing was written.
func TestAOSPClientLocked(t *testing.T) {
	validators.Tool(t, "fastboot")
	fx := validators.Fixtures(t)
	d, serial := start(t, "alioth", "tcp", Options{Locked: true})
	for _, args := range [][]string{
		{"flash", "boot", filepath.Join(fx, "sparse/odd.raw")},
		{"erase", "boot"},
		{"set_active", "b"},
		{"flashing", "unlock"},
	} {
		out, code := aosp(t, serial, args...)
		if code != 1 {
			t.Fatalf("locked phone: fastboot %v exited %d\n%s", args, code, out)
		}
	}
	if d.Writes() != 0 || d.Mutations() != 0 {
		t.Fatalf("locked phone: %d bytes written, %d changes", d.Writes(), d.Mutations())
	}
	if _, err := os.Stat(d.PartitionPath("boot_a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("partition file appeared: %v", err)
	}
	if out := mustAOSP(t, serial, "getvar", "romforge-writes"); !strings.Contains(out, "romforge-writes: 0") {
		t.Fatalf("getvar romforge-writes: %s", out)
	}
}

// commands keeps the host's messages and data sizes of a transcript.
func commands(tr []string) []string {
	var out []string
	for _, l := range tr {
		if strings.HasPrefix(l, "-> ") || strings.HasPrefix(l, "   [") {
			out = append(out, l)
		}
	}
	return out
}

// Our client and the AOSP client send the same messages for the same flash.
func TestTranscriptsMatchAOSP(t *testing.T) {
	validators.Tool(t, "fastboot")
	fx := validators.Fixtures(t)
	for _, img := range []string{"sparse/big.sparse.img", "sparse/big.raw", "sparse/odd.raw"} {
		t.Run(filepath.Base(img), func(t *testing.T) {
			a, aSerial := start(t, "alioth", "tcp", Options{MaxDownloadSize: 0x100000})
			mustAOSP(t, aSerial, "flash", "boot", filepath.Join(fx, img))
			b, bSerial := start(t, "alioth", "tcp", Options{MaxDownloadSize: 0x100000})
			c := dial(t, bSerial)
			f, err := os.Open(filepath.Join(fx, img))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			if _, err := c.FlashPartition(context.Background(), "boot", f, st.Size(), fastboot.FlashFileOptions{}, nil); err != nil {
				t.Fatal(err)
			}
			want, got := commands(a.Transcript()), commands(b.Transcript())
			if strings.Join(want, "\n") != strings.Join(got, "\n") {
				t.Fatalf("transcripts differ:\nAOSP:\n%s\nours:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
			}
			sameFile(t, a.PartitionPath("boot_a"), b.PartitionPath("boot_a"))
		})
	}
}

// Our client against the emulator over TCP and UDP.
func TestOurClient(t *testing.T) {
	fx := validators.Fixtures(t)
	for _, network := range []string{"tcp", "udp"} {
		t.Run(network, func(t *testing.T) {
			ctx := context.Background()
			d, serial := start(t, "begonia", network, Options{MaxDownloadSize: 0x100000, Anti: "3"})
			c := dial(t, serial)
			vars, err := c.GetVarAll(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if vars["product"] != "begonia" || vars["rollback_ver"] != "3" || vars["partition-size:boot"] != "4000000" /* 64 MiB (scatter file), in lk's hex without 0x */ || vars["has-slot:boot"] != "no" {
				t.Fatalf("getvar all: %v", vars)
			}
			if _, err := c.GetVar(ctx, "slot-count"); !errors.As(err, new(*fastboot.RemoteError)) {
				t.Fatalf("slot-count on a non-A/B phone: %v", err)
			}
			f, err := os.Open(filepath.Join(fx, "sparse/big.sparse.img"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			parts, err := c.FlashPartition(ctx, "system", f, st.Size(), fastboot.FlashFileOptions{}, nil)
			if err != nil || len(parts) != 1 || parts[0] != "system" {
				t.Fatalf("flash: %v %v", parts, err)
			}
			sameFile(t, d.PartitionPath("system"), filepath.Join(fx, "sparse/big.raw"))
			// Staged bytes come back with upload.
			data := bytes.Repeat([]byte("romforge"), 40000)
			if err := c.Download(ctx, bytes.NewReader(data), int64(len(data)), nil); err != nil {
				t.Fatal(err)
			}
			var back bytes.Buffer
			if _, err := c.Upload(ctx, &back); err != nil || !bytes.Equal(back.Bytes(), data) {
				t.Fatalf("upload: %d bytes, %v", back.Len(), err)
			}
			if err := c.Flash(ctx, "nonexistent"); !errors.As(err, new(*fastboot.RemoteError)) {
				t.Fatalf("flash of an unknown partition: %v", err)
			}
			if err := c.Reboot(ctx, "fastboot"); !errors.As(err, new(*fastboot.RemoteError)) {
				t.Fatalf("reboot-fastboot on a phone without dynamic partitions: %v", err)
			}
			if err := c.Reboot(ctx, "bootloader"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// 100 transfers cut at random offsets each end in a clean error, never a success, and never touch
// the partition; the phone works normally afterwards.
func TestFaultInjectedTransfers(t *testing.T) {
	ctx := context.Background()
	d, err := New(catalogDevice(t, "alioth"), Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	tcp, udp := serve(t, d, "tcp"), serve(t, d, "udp")
	img := make([]byte, 1<<20)
	rand.New(rand.NewSource(8)).Read(img)
	rng := rand.New(rand.NewSource(9))
	for i := 0; i < 100; i++ {
		cut := 1 + rng.Int63n(int64(len(img))-1)
		d.SetFault(Fault{DropAfter: cut})
		var tr fastboot.Transport
		if i%4 == 3 {
			tr, err = fastboot.DialUDP(ctx, strings.TrimPrefix(udp, "udp:"), &fastboot.UDPOptions{Retransmit: 20 * time.Millisecond, Retries: 10})
		} else {
			tr, err = fastboot.Dial(ctx, tcp)
		}
		if err != nil {
			t.Fatal(err)
		}
		c := fastboot.NewClient(tr, fastboot.WithTimeout(5*time.Second))
		err = c.Download(ctx, bytes.NewReader(img), int64(len(img)), nil)
		if err == nil {
			err = c.Flash(ctx, "boot_a")
		}
		c.Close()
		if err == nil {
			t.Fatalf("transfer %d cut at %d reported success", i, cut)
		}
		if !errors.Is(err, failure.ErrIO) {
			t.Fatalf("transfer %d cut at %d: error %v is not an I/O failure", i, cut, err)
		}
	}
	if d.Writes() != 0 {
		t.Fatalf("cut transfers wrote %d bytes", d.Writes())
	}
	d.SetFault(Fault{})
	c := dial(t, tcp)
	if err := c.Download(ctx, bytes.NewReader(img), int64(len(img)), nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Flash(ctx, "boot_a"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(d.PartitionPath("boot_a"))
	if sha256.Sum256(got) != sha256.Sum256(img) {
		t.Fatal("the flash after the faults wrote different bytes")
	}
}

// A cut in the middle of a split flash fails the flash; pieces already flashed stay (as on a phone),
// and the caller learns it did not complete.
func TestFaultDuringSplitFlash(t *testing.T) {
	fx := validators.Fixtures(t)
	d, serial := start(t, "alioth", "tcp", Options{MaxDownloadSize: 0x100000})
	d.SetFault(Fault{DropAfter: 3 << 20})
	c := dial(t, serial)
	f, err := os.Open(filepath.Join(fx, "sparse/big.sparse.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	_, err = c.FlashPartition(context.Background(), "boot", f, st.Size(), fastboot.FlashFileOptions{}, nil)
	if err == nil || !errors.Is(err, failure.ErrIO) || !strings.Contains(err.Error(), "piece 4 of 7") {
		t.Fatalf("cut split flash: %v", err)
	}
}

func TestFailFlashAndPersistence(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d, serial := start(t, "alioth", "tcp", Options{StateDir: dir, Fault: Fault{FailFlash: "boot"}})
	c := dial(t, serial)
	data := []byte("boot image bytes")
	if err := c.Download(ctx, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Flash(ctx, "boot"); !errors.As(err, new(*fastboot.RemoteError)) {
		t.Fatalf("fail-flash: %v", err)
	}
	if d.Writes() != 0 {
		t.Fatalf("failed flash wrote %d bytes", d.Writes())
	}
	if err := c.Flash(ctx, "dtbo"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetActive(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Flashing(ctx, "lock"); err != nil {
		t.Fatal(err)
	}
	// A new emulator on the same state is the same phone.
	d2, err := New(catalogDevice(t, "alioth"), Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if d2.Writes() != int64(len(data)) || d2.CurrentSlot() != "b" || d2.Unlocked() || d2.Serial() != d.Serial() {
		t.Fatalf("state not kept: writes %d slot %s unlocked %v serial %s/%s", d2.Writes(), d2.CurrentSlot(), d2.Unlocked(), d2.Serial(), d.Serial())
	}
	b, _ := os.ReadFile(d2.PartitionPath("dtbo_a"))
	if !bytes.Equal(b, data) {
		t.Fatalf("dtbo_a holds %q", b)
	}
}

func TestParseFault(t *testing.T) {
	var f Fault
	if err := f.Parse("drop-after=4096,latency=5"); err != nil {
		t.Fatal(err)
	}
	if err := f.Parse("rate=2.5"); err != nil {
		t.Fatal(err)
	}
	if err := f.Parse("fail-flash=boot, cut-after=flash:boot_b"); err != nil {
		t.Fatal(err)
	}
	if f.DropAfter != 4096 || f.Latency != 5*time.Millisecond || f.Rate != 2.5e6 || !f.failsFlash("boot_b") || f.failsFlash("dtbo") || f.CutAfter != "flash:boot_b" {
		t.Fatalf("%+v", f)
	}
	for _, bad := range []string{"drop-after=-1", "rate=0", "latency=x", "boom=1", "drop-after"} {
		if err := new(Fault).Parse(bad); !errors.Is(err, failure.ErrUsage) {
			t.Errorf("Parse(%q): %v", bad, err)
		}
	}
}

// FuzzCommand feeds arbitrary command messages to the emulator: it must answer each with well-formed
// replies no longer than 64 bytes and never panic.
func FuzzCommand(f *testing.F) {
	for _, s := range []string{"getvar:all", "getvar:partition-size:boot_a", "flash:boot", "erase:", "set_active:c",
		"oem device-info", "flashing get_unlock_ability", "reboot-fastboot", "resize-logical-partition:system_a:-1",
		"create-logical-partition:x:99999999999999999999", "update-super:super:wipe", "snapshot-update:merge",
		"download:zzzz", "download:ffffffff", "upload", "\x00\xff", ":", "getvar:has-slot:"} {
		f.Add([]byte(s))
	}
	d, err := New(catalogDevice(f, "alioth"), Options{StateDir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cmd []byte) {
		if len(cmd) == 0 {
			return // no transport carries an empty message (TCP skips empty frames)
		}
		if bytes.HasPrefix(cmd, []byte("download:")) {
			if n, err := fmt.Sscanf(string(cmd[9:]), "%x", new(uint64)); n == 1 && err == nil {
				return // a valid download waits for data; covered by the transport tests
			}
		}
		if _, err := ParseCommand(cmd); err == nil && len(cmd) > 64 {
			t.Fatalf("accepted a %d-byte command", len(cmd))
		}
		host, dev := fastboot.Pipe()
		done := make(chan struct{})
		go func() { d.Serve(context.Background(), dev); close(done) }()
		host.Write(cmd)
		buf := make([]byte, 4096)
		for {
			host.(interface{ SetDeadline(time.Time) error }).SetDeadline(time.Now().Add(5 * time.Second))
			n, err := host.Read(buf)
			if err == io.EOF {
				break // reboot: the phone hung up after OKAY
			}
			if err != nil {
				t.Fatalf("%q: %v", cmd, err)
			}
			if n > 64 {
				t.Fatalf("%q: %d-byte reply", cmd, n)
			}
			r, err := fastboot.ParseReply(buf[:n])
			if err != nil {
				t.Fatalf("%q: reply %q: %v", cmd, buf[:n], err)
			}
			if r.Status == "OKAY" || r.Status == "FAIL" {
				break
			}
			if r.Status == "DATA" {
				break // upload of staged data
			}
		}
		host.Close()
		<-done
	})
}
