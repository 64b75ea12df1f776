package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/romforge/romforge/flash/emulator"
	"github.com/romforge/romforge/flash/fastboot"
)

// startEmulator is in e2e_test.go.

func TestFastbootGetvar(t *testing.T) {
	d, serial := startEmulator(t, "alioth", emulator.Options{})
	code, out, errOut := runCLI(t, "fastboot", "getvar", "product", "--serial", serial)
	if code != 0 || out != "alioth\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	t.Setenv("ANDROID_SERIAL", serial)
	code, out, _ = runCLI(t, "fastboot", "getvar", "serialno", "--json")
	var v map[string]string
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v["value"] != d.Serial() {
		t.Fatalf("--json with $ANDROID_SERIAL: exit %d, %q", code, out)
	}
	code, out, _ = runCLI(t, "fastboot", "getvar", "all", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v["partition-size:boot_a"] != "0xc000000" {
		t.Fatalf("getvar all --json: exit %d, %q", code, out)
	}
	// Unknown variable: the device's FAIL is an I/O failure (exit 5) with its message.
	code, _, errOut = runCLI(t, "fastboot", "getvar", "no-such-var")
	if code != 5 || !strings.Contains(errOut, "Variable Not found") {
		t.Fatalf("unknown var: exit %d, %q", code, errOut)
	}
	// Nothing listening: a clear I/O error.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "tcp:" + ln.Addr().String()
	ln.Close()
	code, _, errOut = runCLI(t, "fastboot", "getvar", "product", "--serial", dead)
	if code != 5 || !strings.Contains(errOut, "connection refused") {
		t.Fatalf("dead serial: exit %d, %q", code, errOut)
	}
	code, _, _ = runCLI(t, "fastboot", "getvar", "product", "--serial", "tcp:host:notaport")
	if code != 2 {
		t.Fatalf("bad serial: exit %d", code)
	}
}

func TestFastbootFlashAndReboot(t *testing.T) {
	d, serial := startEmulator(t, "alioth", emulator.Options{MaxDownloadSize: 0x100000})
	img := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7}, 600000) // 4.2 MB of data: split into sparse pieces
	path := filepath.Join(t.TempDir(), "boot.img")
	os.WriteFile(path, img, 0o644)
	code, out, errOut := runCLI(t, "fastboot", "flash", "boot", path, "--serial", serial, "--slot", "b")
	if code != 0 || !strings.Contains(out, "boot_b") {
		t.Fatalf("flash: exit %d %q %q", code, out, errOut)
	}
	got, _ := os.ReadFile(d.PartitionPath("boot_b"))
	if len(got) < len(img) || !bytes.Equal(got[:len(img)], img) || len(bytes.Trim(got[len(img):], "\x00")) != 0 {
		t.Fatalf("boot_b holds %d bytes, not the image", len(got))
	}
	code, _, errOut = runCLI(t, "fastboot", "reboot", "fastboot", "--serial", serial)
	if code != 0 || !d.Userspace() {
		t.Fatalf("reboot fastboot: exit %d %q", code, errOut)
	}
	code, _, _ = runCLI(t, "fastboot", "reboot", "sideways", "--serial", serial)
	if code != 2 {
		t.Fatalf("bad reboot target: exit %d", code)
	}
}

// romforge flash reaches the emulator through the dial wiring in cmd_fastboot.go; a locked phone
// is refused before anything is written.
func TestFlashCommandUsesFastboot(t *testing.T) {
	img := bytes.Repeat([]byte("dtbo"), 4096)
	path := filepath.Join(t.TempDir(), "dtbo.img")
	os.WriteFile(path, img, 0o644)

	locked, lserial := startEmulator(t, "alioth", emulator.Options{Locked: true})
	code, _, errOut := runCLI(t, "flash", "dtbo="+path, "--device", "alioth", "--serial", lserial, "--yes", "--cache-dir", t.TempDir())
	if code != 3 || locked.Writes() != 0 || locked.Mutations() != 0 {
		t.Fatalf("locked phone: exit %d, writes %d, stderr %q", code, locked.Writes(), errOut)
	}

	d, serial := startEmulator(t, "alioth", emulator.Options{})
	code, out, errOut := runCLI(t, "flash", "dtbo="+path, "--device", "alioth", "--serial", serial, "--yes", "--skip-reboot", "--cache-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("flash: exit %d\n%s\n%s", code, out, errOut)
	}
	// The inactive slot (b) is written, then activated.
	got, _ := os.ReadFile(d.PartitionPath("dtbo_b"))
	if !bytes.Equal(got, img) || d.CurrentSlot() != "b" {
		t.Fatalf("dtbo_b %d bytes, slot %s", len(got), d.CurrentSlot())
	}
}

func TestEmulateCommand(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	state := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"romforge", "emulate", "--device", "sargo", "--listen", "tcp:" + addr, "--state", state,
			"--anti", "2", "--fault", "latency=1", "--max-download-size", "0x200000"}, strings.NewReader(""), &out, &errb)
	}()
	var val string
	var err error
	for i := 0; i < 100; i++ {
		var tr fastboot.Transport
		if tr, err = fastboot.DialTCP(context.Background(), addr); err == nil {
			c := fastboot.NewClient(tr)
			val, err = c.GetVar(context.Background(), "max-download-size")
			c.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	code := <-done
	if err != nil || val != "0x200000" || code != 0 {
		t.Fatalf("emulate: %q %v exit %d\n%s%s", val, err, code, out.String(), errb.String())
	}
	if _, err := os.Stat(filepath.Join(state, "state.json")); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runCLI(t, "emulate", "--device", "sargo", "--state", state, "--fault", "explode=1"); code != 2 {
		t.Fatalf("bad fault: exit %d", code)
	}
}
