// Package audit proves a ROM no longer carries what patch sets remove: it scans partition trees for
// installed packages (by their APK manifests, never file names) and for the sets' hostnames and domain
// families anywhere — plain files, props, hosts, init scripts, native libraries, and inside APK/JAR/zip
// entries including dex string tables — and reports each finding with partition, path and inner path.
package audit

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"

	"github.com/romforge/romforge/android/apk"
	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/patches"
	"github.com/romforge/romforge/progress"
)

// Rules are what the audit looks for.
type Rules struct {
	// Packages maps package names to the reason they are unwanted.
	Packages map[string]string
	// Hosts are exact hostnames (matched as whole hostnames, subdomains included).
	Hosts []string
	// Domains are families: entries containing a dot match as domain suffixes (xiaomi.com matches
	// *.xiaomi.com), others as substrings (xmpush, micloud).
	Domains []string
	// PackageFamilies are package-name globs (com.xiaomi.*) reported unless Keep covers the package.
	PackageFamilies []patches.Rule
	Keep            []patches.Rule
	// PropFamilies are property-key globs (persist.sys.xmsf.*) reported wherever a prop file sets them.
	PropFamilies []patches.Rule
}

// RulesFrom collects the rules of patch sets.
func RulesFrom(sets ...*patches.Set) *Rules {
	r := &Rules{Packages: map[string]string{}}
	seenH := map[string]bool{}
	for _, s := range sets {
		for _, p := range s.Packages() {
			r.Packages[p.Value] = p.Reason
		}
		for _, h := range s.Hosts() {
			if !seenH[strings.ToLower(h)] {
				seenH[strings.ToLower(h)] = true
				r.Hosts = append(r.Hosts, h)
			}
		}
		r.PackageFamilies = append(r.PackageFamilies, s.Families.Packages...)
		r.Keep = append(r.Keep, s.Families.Keep...)
		r.PropFamilies = append(r.PropFamilies, s.Families.Props...)
		for _, d := range s.AuditDomains {
			if !seenH[strings.ToLower(d.Value)] {
				seenH[strings.ToLower(d.Value)] = true
				r.Domains = append(r.Domains, d.Value)
			}
		}
	}
	return r
}

// patterns turns hosts and domain families into matcher patterns.
func (r *Rules) patterns() []pattern {
	var pats []pattern
	for _, h := range r.Hosts {
		pats = append(pats, pattern{text: h, domain: true})
	}
	for _, d := range r.Domains {
		pats = append(pats, pattern{text: d, domain: strings.Contains(d, ".")})
	}
	return pats
}

// Finding is one thing found.
type Finding struct {
	Partition string `json:"partition"`
	Path      string `json:"path"`
	// Inner is the entry inside an archive ("classes2.dex", "lib/arm64-v8a/libx.so"), "" for plain files.
	Inner string `json:"inner_path,omitempty"`
	// Kind is "package", "host", "prop" (a property of a cloud family or naming a cloud host) or
	// "service" (an init service whose program holds cloud hosts).
	Kind string `json:"kind"`
	// Match is the package name, the hostname as found, the property key or the service name.
	Match  string `json:"match"`
	Detail string `json:"detail,omitempty"`
	// Package is the package of the APK a host was found in.
	Package string `json:"package,omitempty"`
	// Program is a service's executable (device path), Host the cloud host a prop's value names.
	Program string `json:"program,omitempty"`
	Host    string `json:"host,omitempty"`
	// Format is what the file is: "zip" (APK, JAR, APEX, …), "elf" (native code) or "data".
	Format string `json:"format,omitempty"`
}

// Key identifies a finding across scans (for tying closure actions to findings).
func (f Finding) Key() string {
	k := f.Kind + " " + f.Match + " " + f.Partition + "/" + f.Path
	if f.Inner != "" {
		k += "!" + f.Inner
	}
	return k
}

func (f Finding) String() string {
	where := f.Partition + "/" + f.Path
	if f.Inner != "" {
		where += "!" + f.Inner
	}
	return fmt.Sprintf("%-7s %-40s %s", f.Kind, f.Match, where)
}

// Result is the outcome of a scan.
type Result struct {
	Findings []Finding `json:"findings"`
	Files    int64     `json:"files_scanned"`
	Bytes    int64     `json:"bytes_scanned"`
	// Unreadable lists archives that could not be opened (reported, never silently skipped).
	Unreadable []string `json:"unreadable,omitempty"`
}

// Clean reports whether nothing was found.
func (r *Result) Clean() bool { return len(r.Findings) == 0 }

// Options tune a scan.
type Options struct {
	// Workers is how many files are scanned at once (default 2×GOMAXPROCS).
	Workers  int
	Progress progress.Reporter
	// Label names the progress task (default "audit"): a build audits several times.
	Label string
}

// maxInflate bounds what one archive may inflate to while being scanned (zip bombs cost time, never
// memory: entries are streamed; nested archives are read into memory only up to maxNested).
const (
	maxInflate = 8 << 30
	maxNested  = 64 << 20
	chunk      = 1 << 20
)

type job struct {
	part, name string
	size       int64
}

// Scan audits the partitions.
func Scan(ctx context.Context, parts map[string]tree.Tree, rules *Rules, opt Options) (*Result, error) {
	m := newMatcher(rules.patterns())
	var jobs []job
	var total int64
	names := make([]string, 0, len(parts))
	for p := range parts {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		err := fs.WalkDir(parts[p], ".", func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				info, err := d.Info()
				if err != nil {
					return err
				}
				jobs = append(jobs, job{p, name, info.Size()})
				total += info.Size()
			}
			return ctx.Err()
		})
		if err != nil {
			return nil, fmt.Errorf("audit: walking %s: %w", p, err)
		}
	}
	label := opt.Label
	if label == "" {
		label = "audit"
	}
	task := progress.OrDiscard(opt.Progress).Task(label, total)
	// Largest first, so one big APK does not run alone at the end while the other workers idle.
	sort.SliceStable(jobs, func(a, b int) bool { return jobs[a].size > jobs[b].size })
	workers := opt.Workers
	if workers <= 0 {
		// Inflating and matching are CPU-bound; the extra workers keep the CPUs busy while others
		// wait for a cold disk.
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	res := &Result{Findings: []Finding{}}
	var mu sync.Mutex
	ch := make(chan job)
	var wg sync.WaitGroup
	var firstErr error
	scanners := make([]*scanner, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		s := &scanner{m: m, rules: rules}
		scanners[w] = s
		go func() {
			defer wg.Done()
			for j := range ch {
				if ctx.Err() != nil {
					continue
				}
				fnd, unreadable, n, err := s.file(parts[j.part], j)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("audit: %s/%s: %w", j.part, j.name, err)
				}
				res.Findings = append(res.Findings, fnd...)
				if unreadable != "" {
					res.Unreadable = append(res.Unreadable, unreadable)
				}
				res.Files++
				res.Bytes += n
				mu.Unlock()
				task.Add(j.size)
			}
		}()
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		task.Done(err)
		return nil, err
	}
	task.Done(firstErr)
	if firstErr != nil {
		return nil, firstErr
	}
	var rc []rcFile
	for _, s := range scanners {
		rc = append(rc, s.rc...)
	}
	res.Findings = append(res.Findings, serviceFindings(rc, res.Findings, names)...)
	res.sort()
	return res, nil
}

func (res *Result) sort() {
	sort.Slice(res.Findings, func(i, j int) bool {
		a, b := res.Findings[i], res.Findings[j]
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		if a.Inner != b.Inner {
			return a.Inner < b.Inner
		}
		return a.Match < b.Match
	})
	sort.Strings(res.Unreadable)
}

// Partitions returns the part of r about the named partitions (findings and unreadable archives).
func (r *Result) Partitions(names ...string) *Result {
	out := &Result{Findings: []Finding{}}
	for _, f := range r.Findings {
		if slices.Contains(names, f.Partition) {
			out.Findings = append(out.Findings, f)
		}
	}
	for _, u := range r.Unreadable {
		for _, n := range names {
			if strings.HasPrefix(u, n+"/") {
				out.Unreadable = append(out.Unreadable, u)
				break
			}
		}
	}
	return out
}

// Merge joins results of scans of different partitions, in the order Scan reports.
func Merge(rs ...*Result) *Result {
	out := &Result{Findings: []Finding{}}
	for _, r := range rs {
		if r == nil {
			continue
		}
		out.Findings = append(out.Findings, r.Findings...)
		out.Unreadable = append(out.Unreadable, r.Unreadable...)
		out.Files += r.Files
		out.Bytes += r.Bytes
	}
	out.sort()
	return out
}

type scanner struct {
	m     *matcher
	rules *Rules
	buf   []byte
	rc    []rcFile // init scripts seen, for service findings once every program has been scanned
	hint  int64    // size of what the next stream call reads, when known
}

// maxText bounds prop and init files read whole (real ones are kilobytes).
const maxText = 16 << 20

// file scans one file; it returns findings, an "unreadable" note, and bytes scanned.
func (s *scanner) file(t tree.Tree, j job) ([]Finding, string, int64, error) {
	f, err := t.Open(j.name)
	if err != nil {
		return nil, "", 0, err
	}
	defer f.Close()
	var head [4]byte
	n, _ := io.ReadFull(f, head[:])
	isZip := n == 4 && string(head[:]) == "PK\x03\x04"
	base := Finding{Partition: j.part, Path: j.name, Format: "data"}
	switch {
	case isZip:
		base.Format = "zip"
	case n == 4 && string(head[:]) == "\x7fELF":
		base.Format = "elf"
	}
	if path.Base(j.name) == "hosts" && path.Base(path.Dir(j.name)) == "etc" {
		b, err := io.ReadAll(io.MultiReader(bytes.NewReader(head[:n]), io.LimitReader(f, 64<<20)))
		if err != nil {
			return nil, "", 0, err
		}
		return s.hostsFile(base, b), "", int64(len(b)), nil
	}
	if !isZip && j.size <= maxText && (isPropFile(j.name) || strings.HasSuffix(j.name, ".rc")) {
		b, err := io.ReadAll(io.MultiReader(bytes.NewReader(head[:n]), io.LimitReader(f, maxText)))
		if err != nil {
			return nil, "", 0, err
		}
		if isPropFile(j.name) {
			return s.propFile(base, b), "", int64(len(b)), nil
		}
		s.rc = append(s.rc, rcFile{part: j.part, name: j.name, services: parseRC(string(b)), starts: rcStarts(string(b))})
		fnd, scanned, err := s.stream(base, bytes.NewReader(b))
		return fnd, "", scanned, err
	}
	if isZip {
		if ra, ok := f.(io.ReaderAt); ok {
			fnd, note := s.archive(base, ra, j.size, 0)
			return fnd, note, j.size, nil
		}
		if j.size <= maxNested {
			b, err := io.ReadAll(io.MultiReader(bytes.NewReader(head[:n]), f))
			if err != nil {
				return nil, "", 0, err
			}
			fnd, note := s.archive(base, bytes.NewReader(b), int64(len(b)), 0)
			return fnd, note, j.size, nil
		}
	}
	s.hint = j.size
	fnd, scanned, err := s.stream(base, io.MultiReader(bytes.NewReader(head[:n]), f))
	return fnd, "", scanned, err
}

// hostsFile reports hosts entries that still resolve a listed name somewhere other than nowhere.
func (s *scanner) hostsFile(base Finding, b []byte) []Finding {
	var out []Finding
	sc := bufio.NewScanner(bytes.NewReader(b))
	for ln := 1; sc.Scan(); ln++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		ip := f[0]
		if ip == "0.0.0.0" || strings.HasPrefix(ip, "127.") || ip == "::" || ip == "::1" {
			continue
		}
		fnd, _, _ := s.stream(base, strings.NewReader(line))
		for i := range fnd {
			fnd[i].Detail = fmt.Sprintf("hosts line %d resolves it to %s", ln, ip)
		}
		out = append(out, fnd...)
	}
	return out
}

// stream scans r in chunks. Each round keeps the last bytes of the previous one in front of the new data,
// so a match across a chunk edge is seen whole, with its surrounding hostname, and reported once.
func (s *scanner) stream(base Finding, r io.Reader) ([]Finding, int64, error) {
	keep := s.m.maxLen + 256
	want := chunk + keep
	if s.hint > 0 && s.hint < chunk {
		// Small files (most of a ROM) need no megabyte buffer; a wrong hint only costs more rounds.
		want = int(s.hint) + keep + 512
	}
	s.hint = 0
	if cap(s.buf) < want {
		s.buf = make([]byte, 0, max(want, 64<<10))
	}
	buf := s.buf[:0]
	var out []Finding
	var seen map[string]bool // made on the first hit: most streams have none
	var total int64
	reported := 0 // matches ending at or before this offset in buf were handled in an earlier round
	for {
		n, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		total += int64(n)
		eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !eof {
			return nil, total, err
		}
		limit := len(buf)
		if !eof {
			limit -= 256 // leave right-hand context for matches near the end to the next round
		}
		toks := newTokens(buf)
		s.m.scan(buf, reported, func(h hit) {
			if h.end > limit {
				return
			}
			host, ok := s.m.acceptIn(toks, h)
			if !ok || seen[host] {
				return
			}
			if seen == nil {
				seen = map[string]bool{}
			}
			seen[host] = true
			f := base
			f.Kind, f.Match = "host", host
			out = append(out, f)
		})
		if eof {
			break
		}
		cut := limit - keep
		if cut < 0 {
			cut = 0
		}
		buf = buf[:copy(buf, buf[cut:])]
		reported = limit - cut
	}
	s.buf = buf[:0]
	return out, total, nil
}

// archive scans a zip (APK, JAR, APEX, OTA zip): the manifest's package, then every entry.
func (s *scanner) archive(base Finding, ra io.ReaderAt, size int64, depth int) ([]Finding, string) {
	zr, err := zip.NewReader(ra, size)
	where := base.Partition + "/" + base.Path
	if base.Inner != "" {
		where += "!" + base.Inner
	}
	if err != nil {
		return nil, where + ": " + err.Error()
	}
	zr.RegisterDecompressor(zip.Deflate, inflate)
	var out []Finding
	if m, err := apk.FromZip(zr); err == nil {
		base.Package = m.Package
		fam, inFamily := s.rules.packageFamily(m.Package)
		if reason, bad := s.rules.Packages[m.Package]; bad || inFamily {
			if !bad {
				reason = fmt.Sprintf("package family %s: %s", fam.Value, fam.Reason)
			}
			f := base
			f.Kind, f.Match, f.Detail = "package", m.Package, reason
			if m.OverlayTarget != "" {
				f.Detail = "overlay of " + m.OverlayTarget
			}
			out = append(out, f)
		} else if _, bad := s.rules.Packages[m.OverlayTarget]; bad && m.OverlayTarget != "" {
			f := base
			f.Kind, f.Match, f.Detail = "package", m.Package, "overlay targeting "+m.OverlayTarget
			out = append(out, f)
		}
	}
	var inflated int64
	note := ""
	for _, zf := range zr.File {
		if strings.HasSuffix(zf.Name, "/") {
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			note = where + "!" + zf.Name + ": " + err.Error()
			continue
		}
		inner := zf.Name
		if base.Inner != "" {
			inner = base.Inner + "!" + zf.Name
		}
		eb := base
		eb.Inner = inner
		lr := io.LimitReader(rc, maxInflate-inflated)
		var head [4]byte
		n, _ := io.ReadFull(lr, head[:])
		if depth == 0 && n == 4 && string(head[:]) == "PK\x03\x04" && zf.UncompressedSize64 <= maxNested {
			b, err := io.ReadAll(io.MultiReader(bytes.NewReader(head[:n]), lr))
			rc.Close()
			if err == nil {
				inflated += int64(len(b))
				fnd, _ := s.archive(eb, bytes.NewReader(b), int64(len(b)), depth+1)
				out = append(out, fnd...)
			}
			continue
		}
		s.hint = int64(min(zf.UncompressedSize64, uint64(chunk)))
		fnd, scanned, _ := s.stream(eb, io.MultiReader(bytes.NewReader(head[:n]), lr))
		rc.Close()
		inflated += scanned
		out = append(out, fnd...)
		if inflated >= maxInflate {
			return out, where + ": stopped after inflating 8 GiB (zip bomb?)"
		}
	}
	return out, note
}

// fileExts are last labels that make a dotted token a file name rather than a hostname.
var fileExts = map[string]bool{"rc": true, "so": true, "xml": true, "apk": true, "dex": true, "jar": true, "prop": true,
	"txt": true, "sh": true, "bin": true, "conf": true, "cfg": true, "json": true, "odex": true, "vdex": true, "art": true,
	"oat": true, "java": true, "class": true, "png": true, "jpg": true, "ini": true, "db": true, "log": true, "kl": true,
	"idc": true, "apex": true, "img": true, "zip": true, "kt": true}

// looksLikeHost keeps substring-family hits (xmpush, micloud) only inside dotted hostname-like tokens, so
// a binary called micloud or a service micloud_sync is not mistaken for an endpoint.
func looksLikeHost(tok string) bool {
	i := strings.LastIndexByte(tok, '.')
	if i <= 0 {
		return false
	}
	tld := tok[i+1:]
	if len(tld) < 2 || len(tld) > 24 || fileExts[tld] {
		return false
	}
	for _, c := range tld {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// inflaters are reused deflate readers with their input buffers. klauspost/compress's inflater is about
// twice as fast as the standard library's on dex; reading its input through a large buffer keeps the
// number of ReadAt calls (system calls for files on disk) low.
var inflaters sync.Pool

type inflater struct {
	br *bufio.Reader
	fr io.ReadCloser // also a flate.Resetter
}

func (f *inflater) Read(p []byte) (int, error) { return f.fr.Read(p) }

func (f *inflater) Close() error {
	err := f.fr.Close()
	f.br.Reset(nil)
	inflaters.Put(f)
	return err
}

// inflate is the zip.Decompressor for deflated entries.
func inflate(r io.Reader) io.ReadCloser {
	f, _ := inflaters.Get().(*inflater)
	if f == nil {
		f = &inflater{br: bufio.NewReaderSize(r, 256<<10)}
		f.fr = flate.NewReader(f.br)
		return f
	}
	f.br.Reset(r)
	f.fr.(flate.Resetter).Reset(f.br, nil)
	return f
}
