// Package validators finds the real reference tools (AOSP fastboot, simg2img, mkfs.erofs, e2fsck, avbtool,
// lpdump, …) and the shared fixtures they make, for tests. A test that needs a tool which is absent is
// skipped with the reason, so `go test` stays green on a laptop while CI, which installs them, runs them all.
package validators

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TB is the part of testing.TB these helpers use.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

var _ TB = (testing.TB)(nil)

// Tool returns the path of a reference tool on PATH, or skips the test saying how to get it.
func Tool(t TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("reference tool %s not installed (run scripts/install-validators.sh as root): %v", name, err)
	}
	return p
}

// Have reports whether a tool is on PATH.
func Have(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// Run runs a reference tool and returns its combined output; a non-zero exit fails the test with the output.
func Run(t TB, name string, args ...string) string {
	t.Helper()
	out, err := RunErr(name, args...)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}

// RunErr runs a tool (found on PATH) with a generous timeout and returns its combined output and error.
func RunErr(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// Root skips the test unless it runs as root (loop mounts, security.* xattrs).
func Root(t TB) {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skipf("needs root on Linux (loop mounts / security xattrs)")
	}
}

// SharedDir returns the shared validators folder (…/shared/validators): $ROMFORGE_VALIDATORS, or the first
// shared/validators found beside the repository or one of its parents.
func SharedDir() (string, error) {
	if d := os.Getenv("ROMFORGE_VALIDATORS"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		c := filepath.Join(d, "shared", "validators")
		if st, err := os.Stat(filepath.Join(c, "make-fixtures.sh")); err == nil && !st.IsDir() {
			return c, nil
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	return "", errors.New("no shared/validators folder beside the repository (set ROMFORGE_VALIDATORS)")
}

// Fixtures returns the directory of the shared fixtures made by make-fixtures.sh. It uses
// $ROMFORGE_FIXTURES when set; otherwise it makes them once into a cache directory keyed by the script's
// hash (safe across concurrently running test binaries), which needs root and the installed tools.
// When that is not possible the test is skipped with the reason.
func Fixtures(t TB) string {
	t.Helper()
	if d := os.Getenv("ROMFORGE_FIXTURES"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "SHA256SUMS")); err != nil {
			t.Fatalf("ROMFORGE_FIXTURES=%s has no SHA256SUMS: %v", d, err)
		}
		return d
	}
	shared, err := SharedDir()
	if err != nil {
		t.Skipf("fixtures unavailable: %v", err)
	}
	script := filepath.Join(shared, "make-fixtures.sh")
	body, err := os.ReadFile(script)
	if err != nil {
		t.Skipf("fixtures unavailable: %v", err)
	}
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skipf("fixtures need root to be made (set ROMFORGE_FIXTURES to a made copy)")
	}
	for _, tool := range []string{"mke2fs", "mkfs.erofs", "img2simg", "lpmake", "avbtool", "paycheck"} {
		if !Have(tool) {
			t.Skipf("fixtures need %s (run scripts/install-validators.sh as root)", tool)
		}
	}
	sum := sha256.Sum256(body)
	dir := filepath.Join(os.TempDir(), "romforge-fixtures-"+hex.EncodeToString(sum[:6]))
	if err := makeOnce(dir, script); err != nil {
		t.Fatalf("making fixtures: %v", err)
	}
	return dir
}

// makeOnce runs make-fixtures.sh into dir unless a complete copy exists, holding a lock directory so that
// parallel test binaries wait for one maker instead of racing.
func makeOnce(dir, script string) error {
	done := filepath.Join(dir, "SHA256SUMS")
	if _, err := os.Stat(done); err == nil {
		return nil
	}
	lock := dir + ".lock"
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if err := os.Mkdir(lock, 0o700); err == nil {
			break
		}
		if st, err := os.Stat(lock); err == nil && time.Since(st.ModTime()) > 5*time.Minute {
			os.Remove(lock) // a maker died; take over
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", lock)
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer os.Remove(lock)
	if _, err := os.Stat(done); err == nil {
		return nil
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	out, err := RunErr("bash", script, tmp)
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", script, err, out)
	}
	os.RemoveAll(dir)
	return os.Rename(tmp, dir)
}
