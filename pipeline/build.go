package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/romforge/romforge/bundle"
	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/flash/plan"
	"github.com/romforge/romforge/fs/fsimage"
	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/image/avb"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
	"github.com/romforge/romforge/patches"
	"github.com/romforge/romforge/patches/audit"
	"github.com/romforge/romforge/patches/harden"
	"github.com/romforge/romforge/progress"
)

// Options describe one build.
type Options struct {
	Device *devices.Device
	// Input is the ROM file or folder; SourceURL where it was fetched from (for the manifest).
	Input     string
	SourceURL string
	Sets      []*patches.Set
	// FS is keep (default), ext4 or erofs.
	FS string
	// Verity is disable (default), resign (needs Key) or keep.
	Verity string
	Key    string
	// Super is auto (default: dynamic devices get one super.img with every logical partition, flashed
	// from the bootloader) or none (logical partition images flashed one by one through fastbootd).
	Super string
	// Out is the bundle folder; it must not exist or be empty (unless Force). A failed build leaves nothing there.
	Out string
	// Force replaces an existing Out, and only once the new bundle is complete: a failed build keeps the old one.
	Force bool
	// Epoch stamps every file the build writes (zero: SOURCE_DATE_EPOCH, else the Unix epoch).
	Epoch    time.Time
	Version  string
	Progress progress.Reporter
	Logf     func(format string, args ...any)
}

// Result is a finished build.
type Result struct {
	Manifest *bundle.Manifest
	Report   *patches.Report
	Before   *audit.Result
	After    *audit.Result
	// Hardening is the closure's outcome; its Left is judged on the built images: a build whose Left is
	// not empty is not hardened (the CLI exits 1).
	Hardening *harden.Outcome
	// Timings are wall-clock seconds per stage (not in the manifest, which must be reproducible).
	Timings map[string]float64
}

// Epoch returns SOURCE_DATE_EPOCH as a time (the Unix epoch when unset or invalid).
func Epoch() time.Time {
	var sec int64
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		fmt.Sscan(v, &sec)
	}
	return time.Unix(sec, 0).UTC()
}

type part struct {
	name    string
	work    string         // extracted raw image
	fs      *fsimage.Image // nil for raw partitions
	logical bool
}

// Run performs the build: each numbered stage is a method of one job, timed into Result.Timings.
func Run(ctx context.Context, opt Options) (res *Result, err error) {
	if opt, err = normalize(opt); err != nil {
		return nil, err
	}
	if ents, err := os.ReadDir(opt.Out); err == nil && len(ents) > 0 && !opt.Force {
		return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("build: %s exists and is not empty; choose a new -o or add --force to replace it", opt.Out))
	}
	// Everything goes to a temporary folder beside Out, renamed only when the build succeeded (a failed or
	// interrupted build leaves nothing there, and the same command can run again).
	outDir, err := safeio.CreateDir(opt.Out)
	if err != nil {
		return nil, err
	}
	defer outDir.Abort() // does nothing once committed
	j := &job{ctx: ctx, opt: opt, logf: opt.Logf, rep: progress.OrDiscard(opt.Progress), tmp: outDir.Path(),
		res: &Result{Timings: map[string]float64{}}, modified: map[string]bool{}}
	j.work = filepath.Join(j.tmp, ".work")
	if err := os.MkdirAll(filepath.Join(j.tmp, "images"), 0o755); err != nil {
		return nil, err
	}
	os.MkdirAll(j.work, 0o755)
	defer j.close()
	type stage struct {
		name string
		run  func() error
	}
	stages := []stage{{"unpack", j.open}, {"unpack", j.unpack}, {"audit", j.auditBefore}, {"patch", j.harden},
		{"repack", j.repack}, {"avb", j.verifiedBoot}, {"audit", j.auditAfter}, {"bundle", j.records}}
	if opt.Device.Dynamic && opt.Super == "auto" {
		stages = append(stages, stage{"super", j.super})
	}
	stages = append(stages, stage{"bundle", j.writeBundle})
	for _, st := range stages {
		t0 := time.Now()
		if err := st.run(); err != nil {
			return nil, err
		}
		j.res.Timings[st.name] += time.Since(t0).Seconds()
	}
	if err := ctx.Err(); err != nil {
		return nil, err // interrupted at the last moment: still no bundle
	}
	t0 := time.Now()
	commit := outDir.Commit
	if opt.Force {
		commit = func(...string) error { return outDir.Replace() }
	}
	if err := commit(); err != nil {
		return nil, err
	}
	j.res.Timings["bundle"] += time.Since(t0).Seconds()
	j.res.Manifest = j.m
	return j.res, nil
}

// normalize fills defaults and refuses contradictory options before anything is read.
func normalize(opt Options) (Options, error) {
	if opt.Device == nil {
		return opt, failure.Kinded(failure.ErrUsage, errors.New("build: a device is required"))
	}
	if opt.Epoch.IsZero() {
		opt.Epoch = Epoch()
	}
	if opt.FS == "" {
		opt.FS = "keep"
	}
	if opt.Verity == "" {
		opt.Verity = "disable"
	}
	switch opt.Verity {
	case "disable", "keep":
	case "resign":
		if opt.Key == "" {
			return opt, failure.Kinded(failure.ErrUsage, errors.New("build: --verity resign needs --key KEY.pem"))
		}
	default:
		return opt, failure.Kinded(failure.ErrUsage, fmt.Errorf("build: --verity %q must be disable, resign or keep", opt.Verity))
	}
	var err error
	if opt.Super, err = superMode(opt.Super); err != nil {
		return opt, err
	}
	if opt.Logf == nil {
		opt.Logf = func(string, ...any) {}
	}
	return opt, nil
}

// job is one build's state as it passes through the stages.
type job struct {
	ctx  context.Context
	opt  Options
	logf func(string, ...any)
	rep  progress.Reporter
	res  *Result
	// tmp is the bundle being written; work holds extracted images until they are moved or rebuilt.
	tmp, work string

	in       Input
	stopSum  context.CancelFunc
	srcSumC  chan sumResult
	parts    []*part
	ramdisks map[string][]*patches.BootRamdisk
	trees    map[string]tree.Tree
	rules    *audit.Rules
	target   *patches.Target
	m        *bundle.Manifest
	modified map[string]bool
	closers  []io.Closer
}

type sumResult struct {
	sum string
	err error
}

func (j *job) close() {
	if j.stopSum != nil {
		j.stopSum()
	}
	for _, c := range j.closers {
		c.Close()
	}
	for _, p := range j.parts {
		if p.fs != nil {
			p.fs.Close()
		}
	}
	if j.in != nil {
		j.in.Close()
	}
}

// open is stage 1: open and check the input, and start hashing it beside the unpacking.
func (j *job) open() error {
	in, err := Open(j.opt.Input, j.opt.Device)
	if err != nil {
		return err
	}
	j.in = in
	if err := checkDevice(j.opt.Device, in); err != nil {
		return err
	}
	j.srcSumC = make(chan sumResult, 1)
	// Its own context ends with the build, so a failed build stops reading a multi-GB input at once.
	sumCtx, stop := context.WithCancel(j.ctx)
	j.stopSum = stop
	go func() {
		if st, err := os.Stat(j.opt.Input); err == nil && st.IsDir() {
			j.srcSumC <- sumResult{} // a folder of images has no one hash
			return
		}
		s, err := image.FileSHA256(sumCtx, j.opt.Input)
		j.srcSumC <- sumResult{s, err}
	}()
	j.logf("input: %s (%s), partitions: %s", filepath.Base(j.opt.Input), in.Kind(), strings.Join(in.Partitions(), ", "))
	return nil
}

func (j *job) addPart(p *part) error {
	if img, err := fsimage.Open(p.work); err == nil {
		p.fs = img
	} else if !errors.Is(err, fsimage.ErrNotFilesystem) {
		return fmt.Errorf("build: %s: %w", p.name, err)
	}
	j.parts = append(j.parts, p)
	return nil
}

// unpack is stage 2: every partition extracted into the work folder; a whole super is split into its
// logical partitions.
func (j *job) unpack() error {
	for _, name := range j.in.Partitions() {
		p := &part{name: name, work: filepath.Join(j.work, name+".img")}
		// A task per partition (its size is known only once it is out), so the unpacking shows and emits
		// events like every other stage.
		task := j.rep.Task("unpack "+name, 0)
		if err := j.in.Extract(j.ctx, name, p.work); err != nil {
			task.Done(err)
			return fmt.Errorf("build: unpacking %s: %w", name, err)
		}
		if st, err := os.Stat(p.work); err == nil {
			task.Add(st.Size())
		}
		task.Done(nil)
		if name == "super" && j.opt.Device.Dynamic {
			// A whole super (Xiaomi fastboot ROMs ship one): its logical partitions are patched and
			// packed again like a payload's.
			logical, err := unpackSuper(j.ctx, j.opt.Device, p.work, j.work)
			if err != nil {
				return fmt.Errorf("build: unpacking super: %w", err)
			}
			os.Remove(p.work)
			for _, lp := range logical {
				if err := j.addPart(lp); err != nil {
					return err
				}
			}
			j.logf("super: %d logical partitions", len(logical))
			continue
		}
		if cp, ok := j.opt.Device.Partition(strings.TrimSuffix(strings.TrimSuffix(name, "_a"), "_b")); ok {
			p.logical = cp.Logical
		}
		if err := j.addPart(p); err != nil {
			return err
		}
	}
	return nil
}

// auditBefore is stage 3a: the filesystems and the boot images' ramdisks, audited as the input has them
// (through overlays: nothing is extracted).
func (j *job) auditBefore() error {
	j.trees = map[string]tree.Tree{}
	for _, p := range j.parts {
		if p.fs != nil {
			j.trees[p.name] = p.fs
		}
	}
	// Boot images' ramdisks are audited and hardened like partitions (init scripts, props, daemons).
	var err error
	if j.ramdisks, err = openRamdisks(j.parts, j.logf); err != nil {
		return err
	}
	for _, rds := range j.ramdisks {
		for _, rd := range rds {
			j.trees[rd.Name] = rd.Tree
		}
	}
	j.rules = audit.RulesFrom(j.opt.Sets...)
	if len(j.trees) > 0 {
		if j.res.Before, err = audit.Scan(j.ctx, j.trees, j.rules, audit.Options{Progress: j.rep, Label: "audit before"}); err != nil {
			return err
		}
	}
	return nil
}

// harden is stage 3b: the sets, then the audit-driven closure until nothing unaccepted is left (or
// rounds run out).
func (j *job) harden() error {
	j.target = patches.NewTarget(j.trees)
	hr, err := harden.Run(j.ctx, j.target, j.opt.Sets, harden.Options{Before: j.res.Before, Progress: j.rep})
	if err != nil {
		return fmt.Errorf("%w (no bundle was written)", err)
	}
	j.res.Report, j.res.Hardening = hr.Report, hr.Outcome
	j.res.Report.Hardening = hr.Outcome
	return nil
}

// repack is stage 4: rebuild what changed (or what --fs converts) and keep the rest byte for byte; boot
// ramdisks whose files changed are written back.
func (j *job) repack() error {
	src := <-j.srcSumC
	if src.err != nil {
		return fmt.Errorf("build: hashing the input: %w", src.err)
	}
	opt := j.opt
	j.m = &bundle.Manifest{Format: 1, Device: opt.Device.Codename, Products: opt.Device.Products, Romforge: opt.Version,
		Source:      bundle.Source{File: filepath.Base(opt.Input), URL: opt.SourceURL, SHA256: src.sum, Kind: j.in.Kind(), Metadata: j.in.Metadata()},
		AntiVersion: j.in.AntiVersion(), AntiRollback: opt.Device.AntiRollback, Verity: opt.Verity, Patch: j.res.Report}
	for _, s := range opt.Sets {
		j.m.Sets = append(j.m.Sets, s.Name)
	}
	for _, p := range j.parts {
		dst := filepath.Join(j.tmp, "images", p.name+".img")
		convert := p.fs != nil && opt.FS != "keep" && opt.FS != p.fs.Kind
		if p.fs != nil && (len(j.target.Overlay(p.name).Changes()) > 0 || convert) {
			if err := rebuild(j.ctx, opt, p, j.target.Overlay(p.name), dst, j.rep); err != nil {
				return err
			}
			j.modified[p.name] = true
			j.logf("rebuilt %s (%s)", p.name, kindOf(opt.FS, p.fs.Kind))
		} else if err := os.Rename(p.work, dst); err != nil {
			return err
		}
	}
	// Init services in the boot ramdisk (the ramdisk's own .rc files, not in any filesystem).
	for _, p := range j.parts {
		if p.fs != nil || len(j.ramdisks[p.name]) == 0 {
			continue
		}
		ch, err := writeRamdisks(j.ctx, filepath.Join(j.tmp, "images", p.name+".img"), j.work, j.ramdisks[p.name], j.target)
		if err != nil {
			return err
		}
		if len(ch) > 0 {
			j.modified[p.name] = true
			j.logf("rewrote %d file(s) in the %s ramdisk", len(ch), p.name)
		}
	}
	return nil
}

// verifiedBoot is stage 5: vbmeta flags or re-signing, as --verity asks.
func (j *job) verifiedBoot() error {
	return verity(j.ctx, j.opt, j.parts, j.modified, j.tmp, j.m)
}

// auditAfter is stage 6: the rebuilt filesystems and ramdisks are scanned again; the others are the
// input's images byte for byte, so their findings from before stand (scanning them again would find the
// same). What is left is judged on the built images, not on the overlays they were built from.
func (j *job) auditAfter() error {
	after := map[string]tree.Tree{}
	var kept []string
	for _, p := range j.parts {
		if p.fs == nil {
			continue
		}
		if !j.modified[p.name] {
			kept = append(kept, p.name)
			continue
		}
		img, err := fsimage.Open(filepath.Join(j.tmp, "images", p.name+".img"))
		if err != nil {
			return fmt.Errorf("build: reopening %s: %w", p.name, err)
		}
		j.closers = append(j.closers, img)
		after[p.name] = img
	}
	for _, p := range j.parts {
		if len(j.ramdisks[p.name]) == 0 {
			continue
		}
		if !j.modified[p.name] {
			for _, rd := range j.ramdisks[p.name] {
				kept = append(kept, rd.Name)
			}
			continue
		}
		f, err := image.OpenFile(filepath.Join(j.tmp, "images", p.name+".img"))
		if err != nil {
			return err
		}
		rds, _, err := patches.ReadBootRamdisks(f, f.Size(), p.name)
		f.Close()
		if err != nil {
			return fmt.Errorf("build: reading back the %s ramdisk: %w", p.name, err)
		}
		for _, rd := range rds {
			after[rd.Name] = rd.Tree
		}
	}
	res := j.res
	if len(after) > 0 || len(kept) > 0 {
		rescanned := &audit.Result{Findings: []audit.Finding{}}
		if len(after) > 0 {
			var err error
			if rescanned, err = audit.Scan(j.ctx, after, j.rules, audit.Options{Progress: j.rep, Label: "audit of the built images"}); err != nil {
				return err
			}
		}
		res.After = rescanned
		if len(kept) > 0 && res.Before != nil {
			res.After = audit.Merge(rescanned, res.Before.Partitions(kept...))
			j.m.Notes = append(j.m.Notes, fmt.Sprintf("audit after: %s unchanged (byte-identical to the input), their findings from before carried over", strings.Join(kept, ", ")))
		}
	}
	if res.After != nil {
		res.Hardening.Accepted, res.Hardening.Left = harden.Judge(res.After.Findings, j.opt.Sets, j.target)
	}
	j.m.AuditBefore, j.m.AuditAfter = res.Before, res.After
	return nil
}

// records is stage 7a: each image's size, hash, format and AVB footer for the manifest.
func (j *job) records() error {
	sums, err := hashImages(j.ctx, j.tmp, j.parts)
	if err != nil {
		return err
	}
	for i, p := range j.parts {
		file := filepath.Join(j.tmp, "images", p.name+".img")
		st, err := os.Stat(file)
		if err != nil {
			return err
		}
		format := "raw"
		if p.fs != nil {
			format = kindOf(j.opt.FS, p.fs.Kind)
			if !j.modified[p.name] {
				format = p.fs.Kind
			}
		}
		rec := bundle.Image{Partition: p.name, File: "images/" + p.name + ".img", Format: format, Size: st.Size(), SHA256: sums[i], Logical: p.logical, Modified: j.modified[p.name]}
		if ai, err := avbInfo(file); err == nil {
			rec.AVB = ai
		}
		j.m.Images = append(j.m.Images, rec)
	}
	return nil
}

// super is stage 7b: dynamic devices get their logical partitions packed into one super.img.
func (j *job) super() error {
	var err error
	if j.m.Images, j.m.Super, err = packSuper(j.ctx, j.opt, j.m.Images, j.tmp, j.rep); err != nil {
		return err
	}
	if s := j.m.Super; s != nil {
		j.logf("packed %d logical partitions into super.img (%d-byte super, slot %q)", len(s.Partitions), s.DeviceSize, s.Slot)
	}
	return nil
}

// writeBundle is stage 7c: the flash plan, the recovery zip of A-only devices, the flash scripts and the
// manifest, with every time stamp from the epoch.
func (j *job) writeBundle() error {
	m := j.m
	m.Steps = flashSteps(m.Images, m.Super)
	if !j.opt.Device.AB && !j.opt.Device.Dynamic {
		if err := recoveryZip(j.ctx, j.opt, j.in, j.parts, j.tmp, m); j.ctx.Err() != nil {
			return j.ctx.Err() // interrupted: no bundle rather than one without its recovery zip
		} else if err != nil {
			m.Notes = append(m.Notes, "no recovery zip: "+err.Error())
		}
	}
	sh, bat := bundle.FlashScripts(m)
	if err := os.WriteFile(filepath.Join(j.tmp, "flash.sh"), []byte(sh), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(j.tmp, "flash.bat"), []byte(bat), 0o644); err != nil {
		return err
	}
	os.RemoveAll(j.work)
	if err := bundle.Write(j.tmp, m); err != nil {
		return err
	}
	return stampTimes(j.tmp, j.opt.Epoch)
}

func kindOf(want, have string) string {
	if want == "" || want == "keep" {
		return have
	}
	return want
}

// checkDevice refuses a ROM built for another device (OTA metadata pre-device).
func checkDevice(d *devices.Device, in Input) error {
	pre := in.Metadata()["pre-device"]
	if pre == "" {
		return nil
	}
	names := map[string]bool{strings.ToLower(d.Codename): true}
	for _, p := range d.Products {
		names[strings.ToLower(p)] = true
	}
	for _, a := range d.Aliases {
		names[strings.ToLower(a)] = true
	}
	for _, p := range strings.FieldsFunc(pre, func(r rune) bool { return r == ',' || r == '|' }) {
		if names[strings.ToLower(strings.TrimSpace(p))] {
			return nil
		}
	}
	return failure.Kinded(failure.ErrRefused, fmt.Errorf("build: this ROM is for %q, not %s (%s): refusing (nothing was written)", pre, d.Codename, d.DisplayName()))
}

// rebuild writes the patched tree of p to dst: the partition's catalog size for physical ext4
// partitions, as small as possible (plus a margin) for logical ones, the source's size otherwise.
func rebuild(ctx context.Context, opt Options, p *part, o *tree.Overlay, dst string, rep progress.Reporter) error {
	ro := fsimage.RebuildOptions{Kind: opt.FS, Timestamp: opt.Epoch, Progress: rep}
	if cp, ok := opt.Device.Partition(p.name); ok && !cp.Logical && cp.Size > 0 && p.fs.Raw.Size() > cp.Size {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("build: %s image (%d bytes) is larger than the partition (%d)", p.name, p.fs.Raw.Size(), cp.Size))
	}
	if p.logical {
		ro.Shrink, ro.Margin = true, 8<<20
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	n, err := fsimage.Rebuild(ctx, f, p.fs, o, ro)
	if err == nil {
		err = f.Truncate(n)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("build: rebuilding %s: %w", p.name, err)
	}
	return nil
}

// verity makes verified boot accept the modified images: disable sets the verity/verification flags in
// vbmeta (or makes an unsigned one with them when the ROM has none but the device uses AVB); resign adds
// footers to modified images and signs a new vbmeta with the owner's key.
func verity(ctx context.Context, opt Options, parts []*part, modified map[string]bool, dir string, m *bundle.Manifest) error {
	if opt.Verity == "keep" || len(modified) == 0 {
		return nil
	}
	var vb *part
	for _, p := range parts {
		if p.name == "vbmeta" {
			vb = p
		}
	}
	vbPath := filepath.Join(dir, "images", "vbmeta.img")
	switch opt.Verity {
	case "disable":
		if vb == nil {
			if _, avbDevice := opt.Device.Partition("vbmeta"); !avbDevice {
				return nil // pre-AVB device: dm-verity (if any) lives in the boot image's fstab
			}
			b, err := avb.Sign(avb.SignOptions{Algorithm: avb.AlgorithmNone, Flags: 3, PaddingSize: 4096})
			if err != nil {
				return err
			}
			if err := os.WriteFile(vbPath, b, 0o644); err != nil {
				return err
			}
			m.Notes = append(m.Notes, "the ROM has no vbmeta; an unsigned vbmeta with verity and verification disabled was added")
			return nil
		}
		b, err := os.ReadFile(vbPath)
		if err != nil {
			return err
		}
		if err := avb.SetFlags(b, 3); err != nil {
			return fmt.Errorf("build: vbmeta: %w", err)
		}
		return os.WriteFile(vbPath, b, 0o644)
	case "resign":
		return resign(ctx, opt, parts, modified, dir, m)
	}
	return nil
}

func resign(ctx context.Context, opt Options, parts []*part, modified map[string]bool, dir string, m *bundle.Manifest) error {
	pemData, err := os.ReadFile(opt.Key)
	if err != nil {
		return err
	}
	key, err := avb.ParsePrivateKeyPEM(pemData)
	if err != nil {
		return err
	}
	alg := avb.Algorithm(0)
	var oldTop *avb.VBMeta
	if b, err := os.ReadFile(filepath.Join(dir, "images", "vbmeta.img")); err == nil {
		if oldTop, err = avb.Parse(b); err != nil {
			return fmt.Errorf("build: vbmeta: %w", err)
		}
		alg = avb.Algorithm(oldTop.Header.Algorithm)
	}
	if alg == avb.AlgorithmNone {
		name := "SHA256_RSA2048"
		if key.N.BitLen() > 2048 {
			name = "SHA256_RSA4096"
		}
		alg, _ = avb.ParseAlgorithm(name)
	}
	var include []*avb.VBMeta
	for _, p := range parts {
		if p.name == "vbmeta" {
			continue
		}
		path := filepath.Join(dir, "images", p.name+".img")
		if modified[p.name] {
			// Reuse the old footer's parameters (salt, hash, partition size) so the result is reproducible;
			// raw partitions (a boot image with an edited ramdisk) get a hash footer at the partition's size.
			fo := avb.FooterOptions{PartitionName: p.name, HashAlgorithm: "sha256", Salt: []byte{}}
			add := avb.AddHashtreeFooter
			if p.fs == nil {
				add = avb.AddHashFooter
				if cp, ok := opt.Device.Partition(p.name); ok {
					fo.PartitionSize = cp.Size
				}
			} else if old, _ := avb.Load(p.fs.Raw); old != nil && old.Footer != nil {
				fo.PartitionSize = old.Size
				for _, d := range old.VBMeta.Descriptors {
					if h, ok := d.(*avb.HashtreeDescriptor); ok {
						fo.Salt, fo.HashAlgorithm = h.Salt, h.HashAlgorithm
					}
				}
			}
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			st, _ := f.Stat()
			_, err = add(ctx, f, st.Size(), fo)
			f.Close()
			if err != nil {
				return fmt.Errorf("build: AVB footer for %s: %w", p.name, err)
			}
		}
		img, closeImg, err := openRaw(path)
		if err != nil {
			return err
		}
		ai, err := avb.Load(img)
		closeImg()
		if err == nil && ai.Footer != nil {
			include = append(include, ai.VBMeta)
		}
	}
	so := avb.SignOptions{Algorithm: alg, Key: key, Include: include, PaddingSize: 4096}
	if oldTop != nil {
		so.RollbackIndex = oldTop.Header.RollbackIndex
		so.RollbackIndexLocation = oldTop.Header.RollbackIndexLocation
	}
	b, err := avb.Sign(so)
	if err != nil {
		return err
	}
	m.Notes = append(m.Notes, "vbmeta re-signed with the given key: the device must trust it (custom AVB key set)")
	return os.WriteFile(filepath.Join(dir, "images", "vbmeta.img"), b, 0o644)
}

func openRaw(path string) (image.Image, func() error, error) {
	f, err := image.OpenFile(path)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}

func avbInfo(path string) (any, error) {
	img, closeImg, err := openRaw(path)
	if err != nil {
		return nil, err
	}
	defer closeImg()
	ai, err := avb.Load(img)
	if err != nil {
		return nil, err
	}
	return ai.Info(), nil
}

// flashSteps orders images for flashing: raw partitions (boot, dtbo, vbmeta, …) first, then physical
// filesystems, then logical ones, then a reboot.
func flashSteps(imgs []bundle.Image, super *bundle.Super) []plan.Step {
	rank := func(i bundle.Image) int {
		switch {
		case i.Logical:
			return 2
		case i.Format == "raw":
			return 0
		}
		return 1
	}
	sorted := append([]bundle.Image(nil), imgs...)
	sort.SliceStable(sorted, func(a, b int) bool { return rank(sorted[a]) < rank(sorted[b]) })
	var steps []plan.Step
	for _, i := range sorted {
		st := plan.Step{Op: plan.OpFlash, Partition: i.Partition, Image: i.File, SHA256: i.SHA256, Logical: i.Logical}
		if i.Partition == "super" && super != nil {
			st.Slot = super.Slot // the slot whose logical partitions the image holds
		}
		steps = append(steps, st)
	}
	if super != nil && super.Slot != "" {
		steps = append(steps, plan.Step{Op: plan.OpSetActive, Slot: super.Slot})
	}
	return append(steps, plan.Step{Op: plan.OpReboot})
}

// recoveryZip writes the block OTA zip for A-only devices without dynamic partitions.
func recoveryZip(ctx context.Context, opt Options, in Input, parts []*part, dir string, m *bundle.Manifest) error {
	if in.UpdateBinary() == nil {
		return errors.New("the source ROM ships no update-binary to run it")
	}
	block := map[string]image.Image{}
	raw := map[string]image.Image{}
	for _, p := range parts {
		img, closeImg, err := openRaw(filepath.Join(dir, "images", p.name+".img"))
		if err != nil {
			return err
		}
		defer closeImg()
		if p.fs != nil {
			block[p.name] = img
		} else if p.name == "boot" {
			raw[p.name] = img
		}
	}
	name := fmt.Sprintf("romforge-%s-recovery.zip", opt.Device.Codename)
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	err = bundle.RecoveryZip(ctx, f, block, raw, bundle.RecoveryOptions{
		Devices: append([]string{opt.Device.Codename}, opt.Device.Aliases...), BlockPrefix: opt.Device.BlockPrefix(),
		UpdateBinary: in.UpdateBinary(), Time: opt.Epoch, Description: "romforge hardened build for " + opt.Device.DisplayName(),
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(filepath.Join(dir, name))
		return err
	}
	m.RecoveryZip = name
	return nil
}

// hashImages hashes the bundle's images on GOMAXPROCS workers (one SHA-256 stream is one core's worth,
// and the images of a big ROM are gigabytes).
func hashImages(ctx context.Context, dir string, parts []*part) ([]string, error) {
	sums := make([]string, len(parts))
	errs := make([]error, len(parts))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			sums[i], errs[i] = image.FileSHA256(ctx, filepath.Join(dir, "images", p.name+".img"))
		}()
	}
	wg.Wait()
	return sums, errors.Join(errs...)
}

// stampTimes sets every file's mtime to the epoch, so archiving a bundle is reproducible too.
func stampTimes(dir string, t time.Time) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, t, t)
	})
}
