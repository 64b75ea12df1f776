package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/romforge/romforge/bundle"
	"github.com/romforge/romforge/demo/sample"
	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/fetch"
	"github.com/romforge/romforge/flash"
	"github.com/romforge/romforge/flash/emulator"
	"github.com/romforge/romforge/flash/fastboot"
	"github.com/romforge/romforge/flash/plan"
	"github.com/romforge/romforge/fs/fsimage"
	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/lp"
	"github.com/romforge/romforge/patches"
	"github.com/romforge/romforge/patches/audit"
	"github.com/romforge/romforge/patches/miuitest"
	"github.com/romforge/romforge/pipeline"
	"github.com/romforge/romforge/progress"
)

// Options configure a demo run.
type Options struct {
	// Dir keeps the artifacts (sample ROM, download cache, bundle, emulator state); "" uses a temporary
	// folder that is removed at the end.
	Dir      string
	Out      io.Writer
	Progress progress.Reporter
	Version  string
}

// Scenario is one device's run.
type Scenario struct {
	Device       string   `json:"device"`
	ROM          string   `json:"rom"`
	Bundle       string   `json:"bundle"`
	FindingsPre  int      `json:"audit_findings_before"`
	FindingsPost int      `json:"audit_findings_after"`
	Removed      int      `json:"files_removed"`
	Flashed      []string `json:"flashed"`
	BytesWritten int64    `json:"bytes_written"`
	// GoneFromDevice lists the planted cloud packages proven absent from the flashed system image.
	GoneFromDevice []string `json:"cloud_packages_gone_from_device"`
	Seconds        float64  `json:"seconds"`
}

// Run performs the demo: for each sample device, publish → fetch (go-github) → build (xiaomi-hardened,
// audits before and after) → flash to the emulator → read back and prove the cloud apps are gone.
func Run(ctx context.Context, opt Options) ([]Scenario, error) {
	if opt.Out == nil {
		opt.Out = io.Discard
	}
	dir := opt.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "romforge-demo-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []Scenario
	for _, sc := range scenarios {
		s, err := runScenario(ctx, opt, dir, sc)
		if err != nil {
			return out, fmt.Errorf("demo %s: %w", sc.device, err)
		}
		out = append(out, *s)
	}
	return out, nil
}

type scenario struct {
	device, repo, asset string
	make                func(ctx context.Context, w io.Writer) error
}

// scenarios are the sample devices: an A-only ext4 phone from 2014 and a current A/B phone with dynamic
// partitions and EROFS.
var scenarios = []scenario{{
	device: "armani", repo: "demo-community/armani-releases", asset: "lineage-14.1-20231114-UNOFFICIAL-armani.zip",
	make: func(ctx context.Context, w io.Writer) error {
		return sample.ArmaniROM(ctx, w, sample.Options{SystemSize: 48 << 20})
	},
}, {
	device: "alioth", repo: "demo-community/alioth-releases", asset: "lineage-21.0-20231114-UNOFFICIAL-alioth.zip",
	make: func(ctx context.Context, w io.Writer) error { return sample.ABROM(ctx, w, "alioth") },
}}

func say(w io.Writer, format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }

func runScenario(ctx context.Context, opt Options, dir string, sc scenario) (*Scenario, error) {
	start := time.Now()
	w := opt.Out
	cat, err := devices.Builtin()
	if err != nil {
		return nil, err
	}
	dev, err := cat.Lookup(sc.device)
	if err != nil {
		return nil, err
	}
	base := filepath.Join(dir, sc.device)
	os.RemoveAll(base)
	os.MkdirAll(base, 0o755)
	res := &Scenario{Device: dev.Codename}
	say(w, "\n== %s (%s): A/B %v, dynamic partitions %v", dev.Codename, dev.DisplayName(), dev.AB, dev.Dynamic)

	// 1. A community release with MIUI-like cloud apps, hosts and props planted.
	var rom bytes.Buffer
	if err := sc.make(ctx, &rom); err != nil {
		return nil, err
	}
	srv, err := StartReleaseServer(sc.repo, []Release{{Tag: "14.1-20231114", Name: "LineageOS 14.1 (sample)", Published: sample.Epoch, Assets: []Asset{{Name: sc.asset, Data: rom.Bytes()}}}})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	say(w, "1. published a sample community ROM (%d KiB) at %s/%s (GitHub-shaped, in-process)", rom.Len()>>10, srv.URL, sc.repo)

	// 2. Fetch it through the real go-github client, verified by its checksum sidecar.
	src := devices.Source{Name: "demo", Kind: "github", Repo: sc.repo, Asset: `^lineage-.*\.zip$`, Checksum: "sidecar", Family: "lineageos"}
	gh, err := fetch.NewGitHub(src, fetch.GitHubOptions{API: srv.URL})
	if err != nil {
		return nil, err
	}
	builds, err := gh.List(ctx, fetch.ListOptions{})
	if err != nil || len(builds) == 0 {
		return nil, fmt.Errorf("listing releases: %v", err)
	}
	path, err := fetch.Download(ctx, builds[0], fetch.DownloadOptions{Dir: filepath.Join(base, "downloads"), Progress: opt.Progress})
	if err != nil {
		return nil, err
	}
	res.ROM = path
	say(w, "2. fetched %s (%s checksum verified)", filepath.Base(path), builds[0].Checksum.Kind)

	// 3. Build with xiaomi-hardened: audit before, patch through overlays, rebuild, audit after.
	set, err := patches.Load("xiaomi-hardened")
	if err != nil {
		return nil, err
	}
	res.Bundle = filepath.Join(base, "bundle")
	br, err := pipeline.Run(ctx, pipeline.Options{Device: dev, Input: path, SourceURL: builds[0].URL, Sets: []*patches.Set{set}, Out: res.Bundle, Version: opt.Version, Progress: opt.Progress})
	if err != nil {
		return nil, err
	}
	res.FindingsPre, res.FindingsPost, res.Removed = len(br.Before.Findings), len(br.After.Findings), br.Report.Removed
	say(w, "3. audit before: %d finding(s), e.g.:", res.FindingsPre)
	for i, f := range br.Before.Findings {
		if i == 6 {
			say(w, "     … and %d more", len(br.Before.Findings)-6)
			break
		}
		say(w, "     %s", f)
	}
	say(w, "   patched with %s: %d files removed, %d modified; rebuilt images: %s", set.Name, br.Report.Removed, br.Report.Changed, rebuilt(br.Manifest))
	say(w, "   audit after: %d finding(s)", res.FindingsPost)
	if res.FindingsPost != 0 {
		return nil, fmt.Errorf("the built images still audit dirty")
	}

	// 4. Flash the bundle to an emulated phone over fastboot TCP, with every pre-flight check.
	em, err := emulator.New(dev, emulator.Options{StateDir: filepath.Join(base, "phone")})
	if err != nil {
		return nil, err
	}
	l, err := fastboot.ListenTCP("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go em.ServeListener(sctx, l)
	defer l.Close()
	serial := "tcp:" + l.Addr().String()
	dial := func(ctx context.Context) (flash.Device, error) {
		t, err := fastboot.Dial(ctx, serial)
		if err != nil {
			return nil, err
		}
		return fastboot.NewClient(t), nil
	}
	fd, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	m, err := bundle.Read(res.Bundle)
	if err != nil {
		return nil, err
	}
	fp, err := bundle.Plan(res.Bundle, m, dev)
	if err != nil {
		return nil, err
	}
	chk, err := flash.Preflight(ctx, fd, fp, flash.PreflightOptions{})
	if err != nil {
		return nil, err
	}
	say(w, "4. emulated %s at %s passed pre-flight (product %s, unlocked %s); flashing:", dev.Codename, serial, chk.Facts.Product, chk.Facts.Unlocked)
	systemPart := "system"
	for _, c := range chk.Commands {
		say(w, "     %s", c)
		if c.Op == plan.OpFlash {
			res.Flashed = append(res.Flashed, c.Partition)
			if strings.TrimSuffix(strings.TrimSuffix(c.Partition, "_a"), "_b") == "system" {
				systemPart = c.Partition
			}
		}
	}
	if err := flash.Run(ctx, fd, fp, chk, flash.RunOptions{Progress: opt.Progress, Reconnect: dial}); err != nil {
		return nil, err
	}
	res.BytesWritten = em.Writes()

	// 5. Read the flashed system back from the virtual device and prove the cloud apps are gone. With a
	// super image, system is found the way the phone finds it: through super's LP metadata.
	var img *fsimage.Image
	if m.Super != nil {
		sysName := "system"
		if m.Super.Slot != "" {
			sysName += "_" + m.Super.Slot
		}
		var superFile io.Closer
		img, superFile, err = systemFromSuper(em.PartitionPath("super"), sysName)
		if err == nil {
			defer superFile.Close()
		}
		say(w, "     read %s back through the LP metadata of the flashed super", sysName)
	} else {
		img, err = fsimage.Open(em.PartitionPath(systemPart))
	}
	if err != nil {
		return nil, fmt.Errorf("reading the flashed system back: %w", err)
	}
	defer img.Close()
	installed := map[string]bool{}
	ra, err := audit.Scan(ctx, map[string]tree.Tree{"system": img}, audit.RulesFrom(set), audit.Options{})
	if err != nil {
		return nil, err
	}
	for _, f := range ra.Findings {
		if f.Kind == "package" {
			installed[f.Match] = true
		}
	}
	for _, p := range miuitest.Planted.Packages {
		if !installed[p] {
			res.GoneFromDevice = append(res.GoneFromDevice, p)
		}
	}
	hosts, _ := fs.ReadFile(img, "etc/hosts")
	blocked := strings.Count(string(hosts), "0.0.0.0 ")
	say(w, "5. read back from the phone: %d bytes written; %d/%d planted cloud packages gone (%s); %d hosts blocked; audit of the device image: %d finding(s)",
		res.BytesWritten, len(res.GoneFromDevice), len(miuitest.Planted.Packages), strings.Join(res.GoneFromDevice, ", "), blocked, len(ra.Findings))
	if !ra.Clean() || len(res.GoneFromDevice) != len(miuitest.Planted.Packages) {
		return nil, fmt.Errorf("the flashed image still carries cloud endpoints: %v", ra.Findings)
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

func rebuilt(m *bundle.Manifest) string {
	var s []string
	for _, im := range m.Images {
		if im.Modified {
			s = append(s, fmt.Sprintf("%s (%s, %d MiB)", im.Partition, im.Format, im.Size>>20))
		}
	}
	return strings.Join(s, ", ")
}

// systemFromSuper opens a logical partition of a flashed (raw) super partition as a filesystem; the
// closer releases the super file.
func systemFromSuper(superPath, name string) (*fsimage.Image, io.Closer, error) {
	f, err := image.OpenFile(superPath)
	if err != nil {
		return nil, nil, err
	}
	img, err := func() (*fsimage.Image, error) {
		s, err := lp.NewReader(f, f.Size())
		if err != nil {
			return nil, err
		}
		part, err := s.Partition(0, name)
		if err != nil {
			return nil, err
		}
		return fsimage.OpenImage(part)
	}()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return img, f, nil
}
