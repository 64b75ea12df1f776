package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash/emulator"
	"github.com/romforge/romforge/image/sparse"
)

// plantUserData writes recognisable bytes into the emulated phone's userdata, as a customer's data.
func plantUserData(t *testing.T, em *emulator.Device) []byte {
	t.Helper()
	data := bytes.Repeat([]byte("customer photos "), 4096)
	if err := os.WriteFile(em.PartitionPath("userdata"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

// checkFlashed proves every image of the ROM landed on its partition (both slots for _ab) and returns
// how many partitions were written.
func checkFlashed(t *testing.T, em *emulator.Device, d *devices.Device, rom stockROM) int {
	t.Helper()
	changes := em.Changes()
	n := 0
	for part, img := range rom.Images {
		// The expanded image (super.img is sparse); its first 4 MiB hold super's geometry and metadata.
		si, c, err := sparse.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, min(si.Size(), 4<<20))
		si.ReadAt(want, 0)
		c.Close()
		names := []string{part}
		if rom.Slotted[part] {
			names = []string{part + "_a", part + "_b"}
		}
		for _, name := range names {
			got := make([]byte, len(want))
			if f, err := os.Open(em.PartitionPath(name)); err == nil {
				f.ReadAt(got, 0)
				f.Close()
			}
			if !bytes.Equal(got, want) || changes[name] != 1 {
				t.Errorf("%s: %s not flashed with %s (changes %d)", d.Codename, name, filepath.Base(img), changes[name])
			}
			n++
		}
	}
	return n
}

// TestStockXiaomiROMKeepsUserData flashes generated stock-style Xiaomi fastboot ROMs (firmware
// included) to emulated phones of their model: user data survives unless --wipe, the lock script is
// refused, and the product and anti-rollback checks refuse before a byte is written.
func TestStockXiaomiROMKeepsUserData(t *testing.T) {
	cat, err := devices.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	for i, codename := range []string{"spes", "raphael"} {
		d, _ := cat.Lookup(codename)
		rom := writeStockROM(t, d, int64(17+i), 1)
		if len(rom.Images) < 12 {
			t.Fatalf("%s: the generated ROM flashes only %d partitions", codename, len(rom.Images))
		}

		// Default: flash_all_except_storage.sh; userdata and metadata untouched.
		em, serial := startEmulator(t, codename, emulator.Options{})
		data := plantUserData(t, em)
		code, stdout, stderr := runCLI(t, "flash", rom.Root, "--serial", serial, "--yes")
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", codename, code, stdout, stderr)
		}
		if !strings.Contains(stdout+stderr, "user data kept: flash_all_except_storage.sh") {
			t.Errorf("%s: output does not say user data is kept:\n%s\n%s", codename, stdout, stderr)
		}
		written := checkFlashed(t, em, d, rom)
		if codename == "spes" && written < 30 {
			t.Errorf("spes: only %d partitions written, a stock ROM writes about 30", written)
		}
		if got, _ := os.ReadFile(em.PartitionPath("userdata")); !bytes.Equal(got, data) {
			t.Errorf("%s: userdata changed although --wipe was not given", codename)
		}
		if c := em.Changes(); c["userdata"] != 0 || c["metadata"] != 0 {
			t.Errorf("%s: userdata/metadata written: %v", codename, c)
		}

		// The same ROM as MiFlash downloads ship it (.tgz, top folder inside) plans and flashes the same.
		if codename == "spes" {
			tgz := packTGZ(t, rom.Root)
			emT, serialT := startEmulator(t, codename, emulator.Options{})
			data := plantUserData(t, emT)
			code, stdout, stderr := runCLI(t, "flash", tgz, "--serial", serialT, "--yes")
			if code != 0 {
				t.Fatalf("%s .tgz: exit %d\n%s\n%s", codename, code, stdout, stderr)
			}
			checkFlashed(t, emT, d, rom)
			if got, _ := os.ReadFile(emT.PartitionPath("userdata")); !bytes.Equal(got, data) {
				t.Errorf("%s .tgz: userdata changed", codename)
			}
		}

		// A ROM with only the Windows scripts plans from the .bat ones the same way.
		if codename == "spes" {
			batROM := writeStockROM(t, d, int64(17+i), 1)
			for _, s := range []string{"flash_all.sh", "flash_all_except_storage.sh", "flash_all_lock.sh"} {
				os.Remove(filepath.Join(batROM.Root, s))
			}
			emB, serialB := startEmulator(t, codename, emulator.Options{})
			data := plantUserData(t, emB)
			code, stdout, stderr := runCLI(t, "flash", batROM.Root, "--serial", serialB, "--yes")
			if code != 0 || !strings.Contains(stdout+stderr, "user data kept: flash_all_except_storage.bat") {
				t.Fatalf("%s .bat only: exit %d\n%s\n%s", codename, code, stdout, stderr)
			}
			checkFlashed(t, emB, d, batROM)
			if got, _ := os.ReadFile(emB.PartitionPath("userdata")); !bytes.Equal(got, data) {
				t.Errorf("%s .bat only: userdata changed", codename)
			}
		}

		// No except_storage script: flash_all without its wipe steps, said so.
		for _, s := range []string{"flash_all_except_storage.sh", "flash_all_except_storage.bat"} {
			os.Remove(filepath.Join(rom.Root, s))
		}
		em2, serial2 := startEmulator(t, codename, emulator.Options{})
		data = plantUserData(t, em2)
		code, stdout, stderr = runCLI(t, "flash", rom.Root, "--serial", serial2, "--yes")
		if code != 0 || !strings.Contains(stdout+stderr, "dropped flash_all.sh line") {
			t.Fatalf("%s without except_storage: exit %d\n%s\n%s", codename, code, stdout, stderr)
		}
		checkFlashed(t, em2, d, rom)
		if got, _ := os.ReadFile(em2.PartitionPath("userdata")); !bytes.Equal(got, data) || em2.Changes()["userdata"] != 0 {
			t.Errorf("%s: userdata changed when flash_all.sh's erase should have been dropped", codename)
		}

		// --wipe: flash_all as written, userdata erased.
		em3, serial3 := startEmulator(t, codename, emulator.Options{})
		plantUserData(t, em3)
		code, stdout, stderr = runCLI(t, "flash", rom.Root, "--serial", serial3, "--yes", "--wipe")
		if code != 0 {
			t.Fatalf("%s --wipe: exit %d\n%s\n%s", codename, code, stdout, stderr)
		}
		checkFlashed(t, em3, d, rom)
		// Erased once: the script's erase, not a second one for --wipe.
		if got, _ := os.ReadFile(em3.PartitionPath("userdata")); len(got) != 0 || em3.Changes()["userdata"] != 1 {
			t.Errorf("%s --wipe: userdata not erased once (%d bytes left, %d erases)", codename, len(got), em3.Changes()["userdata"])
		}
		if d.Dynamic && em3.Changes()["metadata"] != 1 {
			t.Errorf("%s --wipe: metadata erased %d times", codename, em3.Changes()["metadata"])
		}

		// Refusals write nothing: the lock script, another model's phone, a higher anti-rollback level.
		for _, tc := range []struct {
			name, device string
			opt          emulator.Options
			args         []string
			want         string
		}{
			{"all-lock", codename, emulator.Options{}, []string{"--script", "all-lock"}, "never relocks"},
			{"wrong phone", map[string]string{"spes": "raphael", "raphael": "spes"}[codename], emulator.Options{}, nil, "wrong phone"},
			{"anti-rollback", codename, emulator.Options{Anti: "2"}, nil, "anti-rollback"},
		} {
			emR, serialR := startEmulator(t, tc.device, tc.opt)
			code, stdout, stderr := runCLI(t, append([]string{"flash", rom.Root, "--serial", serialR, "--yes"}, tc.args...)...)
			if code != 3 || !strings.Contains(stdout+stderr, tc.want) || emR.Writes() != 0 || emR.Mutations() != 0 {
				t.Errorf("%s %s: exit %d, writes %d, mutations %d\n%s\n%s", codename, tc.name, code, emR.Writes(), emR.Mutations(), stdout, stderr)
			}
		}
	}
}

// packTGZ packs a ROM folder into NAME.tgz with NAME/ as its top folder, as Xiaomi publishes them.
func packTGZ(t *testing.T, root string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(root)+".tgz")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	err = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(filepath.Dir(root), p)
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(h); err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStockROMEveryXiaomiDevice: for every Xiaomi phone in the catalog, a generated stock-style ROM of
// the partitions the catalog knows plans and flashes on an emulated phone of that model, user data kept.
func TestStockROMEveryXiaomiDevice(t *testing.T) {
	if testing.Short() {
		t.Skip("flashes one emulated phone per catalog device")
	}
	cat, err := devices.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	n := 0
	for i, d := range cat.Devices {
		if d.Vendor != "Xiaomi" {
			continue
		}
		n++
		rom := writeStockROM(t, d, int64(100+i), 1)
		em, serial := startEmulatorFor(t, d, emulator.Options{})
		data := plantUserData(t, em)
		code, stdout, stderr := runCLI(t, "flash", rom.Root, "--serial", serial, "--yes")
		if code != 0 {
			t.Errorf("%s: exit %d\n%s\n%s", d.Codename, code, stdout, stderr)
			continue
		}
		checkFlashed(t, em, d, rom)
		if got, _ := os.ReadFile(em.PartitionPath("userdata")); !bytes.Equal(got, data) || em.Changes()["userdata"] != 0 {
			t.Errorf("%s: userdata changed", d.Codename)
		}
	}
	if n < 10 {
		t.Errorf("only %d Xiaomi devices in the catalog", n)
	}
}
