package patches

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/romforge/romforge/android/apk"
	"github.com/romforge/romforge/fs/tree"
)

// Step is one compiled patch step.
type Step interface {
	Kind() string
	// Apply edits t and records every change in r. It must be idempotent.
	Apply(ctx context.Context, t *Target, r *StepReport) error
}

type metaLike interface{ meta() tree.Meta }

type fixedMeta tree.Meta

func (m fixedMeta) meta() tree.Meta { return tree.Meta(m) }

// kinds is the registry of step kinds.
var kinds = map[string]func(StepSpec, bool) (Step, error){
	"remove_packages": newRemovePackages,
	"remove_paths":    newRemovePaths,
	"hosts":           newHosts,
	"props":           newProps,
	"xml":             newXML,
	"init":            newInit,
	"replace":         newReplace,
}

// Kinds lists the step kinds, sorted.
func Kinds() []string {
	var out []string
	for k := range kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func compile(s StepSpec, keepBootCritical bool) (Step, error) {
	f, ok := kinds[s.Kind]
	if !ok {
		return nil, fmt.Errorf("unknown step kind %q (known: %s)", s.Kind, strings.Join(Kinds(), ", "))
	}
	for _, it := range s.Items {
		if strings.TrimSpace(it.Value) == "" {
			return nil, errors.New("an item has no value")
		}
	}
	return f(s, keepBootCritical)
}

func activeItems(items []Rule, keepBootCritical bool, r *StepReport) []Rule {
	var out []Rule
	for _, it := range items {
		if keepBootCritical && it.BootCritical {
			if r != nil {
				r.note(fmt.Sprintf("kept %s: boot-critical (%s)", it.Value, it.Reason))
			}
			continue
		}
		out = append(out, it)
	}
	return out
}

// ---- remove_packages ---------------------------------------------------------------------------

type removePackages struct {
	items []Rule
	keep  bool
	// never are packages left installed although an item's glob matches them.
	never []Rule
}

func newRemovePackages(s StepSpec, keep bool) (Step, error) {
	if len(s.Items) == 0 {
		return nil, errors.New("remove_packages needs items (package names or globs such as com.xiaomi.*)")
	}
	for _, it := range append(append([]Rule(nil), s.Items...), s.Keep...) {
		if _, err := path.Match(it.Value, ""); err != nil {
			return nil, fmt.Errorf("bad package glob %q", it.Value)
		}
	}
	return &removePackages{items: s.Items, keep: keep, never: s.Keep}, nil
}

// isGlob reports whether a rule value is a pattern rather than a name.
func isGlob(v string) bool { return strings.ContainsAny(v, "*?[") }

func (*removePackages) Kind() string { return "remove_packages" }

// packageGlobs are where APKs and APEXes live on every partition.
var packageGlobs = []string{
	"*/app/*.apk", "*/app/*/*.apk", "*/priv-app/*.apk", "*/priv-app/*/*.apk",
	"*/overlay/*.apk", "*/overlay/*/*.apk", "*/data-app/*/*.apk", "*/apex/*.apex",
}

// appIndex maps package names to their APK paths, and overlay targets to overlay APKs.
type appIndex struct {
	byPackage map[string][]string
	overlays  map[string][]string
}

func indexApps(ctx context.Context, t *Target) (*appIndex, error) {
	idx := &appIndex{byPackage: map[string][]string{}, overlays: map[string][]string{}}
	for _, g := range packageGlobs {
		paths, err := t.Glob(g)
		if err != nil {
			return nil, err
		}
		for _, p := range paths {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			m, err := readManifest(t, p)
			if err != nil {
				continue // not an app we can read: the audit reports unreadable APKs separately
			}
			idx.byPackage[m.Package] = appendUnique(idx.byPackage[m.Package], p)
			if m.OverlayTarget != "" {
				idx.overlays[m.OverlayTarget] = appendUnique(idx.overlays[m.OverlayTarget], p)
			}
		}
	}
	return idx, nil
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// readManifest reads an APK's manifest straight from the tree (file handles that are io.ReaderAt are read
// in place; others are buffered, bounded).
func readManifest(t *Target, p string) (*apk.Manifest, error) {
	o, _, name, err := t.split(p)
	if err != nil {
		return nil, err
	}
	m, err := o.Meta(name)
	if err != nil || !m.Mode.IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	f, err := o.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if ra, ok := f.(io.ReaderAt); ok {
		return apk.Read(ra, m.Size)
	}
	if m.Size > 1<<30 {
		return nil, fmt.Errorf("%s: too large to buffer", p)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return apk.Read(bytes.NewReader(b), int64(len(b)))
}

// appDir returns what to delete for an APK: its own directory (app/Foo/Foo.apk → app/Foo), or the
// file itself in the old flat layout.
func appDir(p string) string {
	dir := path.Dir(p)
	switch path.Base(path.Dir(dir)) {
	case "app", "priv-app", "overlay", "data-app":
		return dir
	}
	return p
}

func (s *removePackages) Apply(ctx context.Context, t *Target, r *StepReport) error {
	items := activeItems(s.items, s.keep, r)
	idx, err := indexApps(ctx, t)
	if err != nil {
		return err
	}
	// Globs expand to the installed packages they match, minus the keep-list.
	var expanded []Rule
	for _, it := range items {
		if !isGlob(it.Value) {
			expanded = append(expanded, it)
			continue
		}
		var names []string
		for pkg := range idx.byPackage {
			if GlobMatch(it.Value, pkg) {
				names = append(names, pkg)
			}
		}
		sort.Strings(names)
		for _, pkg := range names {
			kept := false
			for _, k := range s.never {
				if GlobMatch(k.Value, pkg) {
					r.note(fmt.Sprintf("kept %s: %s", pkg, k.Reason))
					kept = true
				}
			}
			if !kept {
				e := it
				e.Value = pkg
				expanded = append(expanded, e)
			}
		}
	}
	pkgs := map[string]bool{}
	for _, it := range expanded {
		pkgs[it.Value] = true
		apks := idx.byPackage[it.Value]
		for _, ov := range idx.overlays[it.Value] {
			apks = appendUnique(apks, ov)
		}
		if len(apks) == 0 {
			r.note(it.Value + ": not installed")
			continue
		}
		if it.BootCritical {
			r.Warnings = append(r.Warnings, fmt.Sprintf("removed %s, which the set marks boot-critical (%s); use a -safe set to keep it", it.Value, it.Breaks))
		}
		for _, a := range apks {
			target := appDir(a)
			if !t.Exists(target) {
				continue // already removed with an earlier APK of the same directory
			}
			if err := recordRemoval(ctx, t, r, target, "package "+it.Value); err != nil {
				return err
			}
			// Flat layout: odex/vdex beside the APK and in oat/<arch>/.
			if target == a {
				base := strings.TrimSuffix(path.Base(a), path.Ext(a))
				dir := path.Dir(a)
				for _, g := range []string{dir + "/" + base + ".odex", dir + "/oat/*/" + base + ".odex", dir + "/oat/*/" + base + ".vdex", dir + "/oat/*/" + base + ".art"} {
					extra, _ := t.Glob(g)
					for _, e := range extra {
						if err := recordRemoval(ctx, t, r, e, "compiled code of "+it.Value); err != nil {
							return err
						}
					}
				}
			}
		}
	}
	// Permission, default-permission and sysconfig entries naming the packages.
	var xmlFiles []string
	for _, g := range []string{"*/etc/permissions/*.xml", "*/etc/default-permissions/*.xml", "*/etc/sysconfig/*.xml"} {
		fs, err := t.Glob(g)
		if err != nil {
			return err
		}
		xmlFiles = append(xmlFiles, fs...)
	}
	for _, f := range xmlFiles {
		if err := removeXMLElements(t, r, f, "", "package", pkgs); err != nil {
			return err
		}
	}
	return nil
}

// ---- remove_paths ------------------------------------------------------------------------------

type removePaths struct {
	items []Rule
	keep  bool
}

func newRemovePaths(s StepSpec, keep bool) (Step, error) {
	if len(s.Items) == 0 {
		return nil, errors.New("remove_paths needs items (path globs such as system/app/Foo)")
	}
	for _, it := range s.Items {
		if _, err := path.Match(strings.ReplaceAll(it.Value, "**", "x"), ""); err != nil {
			return nil, fmt.Errorf("bad glob %q", it.Value)
		}
		if strings.Contains("/"+it.Value+"/", "/../") {
			return nil, fmt.Errorf("%q leaves the partition", it.Value)
		}
	}
	return &removePaths{items: s.Items, keep: keep}, nil
}

func (*removePaths) Kind() string { return "remove_paths" }

func (s *removePaths) Apply(ctx context.Context, t *Target, r *StepReport) error {
	for _, it := range activeItems(s.items, s.keep, r) {
		matches, err := t.Glob(it.Value)
		if err != nil {
			return err
		}
		for _, m := range matches {
			if !t.Exists(m) {
				continue
			}
			if err := recordRemoval(ctx, t, r, m, it.Reason); err != nil {
				return err
			}
		}
	}
	return nil
}

// ---- hosts -------------------------------------------------------------------------------------

type hosts struct {
	items []Rule
	file  string
	keep  bool
}

var hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)

func newHosts(s StepSpec, keep bool) (Step, error) {
	for _, it := range s.Items {
		if !hostRE.MatchString(it.Value) {
			return nil, fmt.Errorf("%q is not a hostname", it.Value)
		}
	}
	f := s.HostsFile
	if f == "" {
		f = "system/etc/hosts"
	}
	return &hosts{items: s.Items, file: f, keep: keep}, nil
}

func (*hosts) Kind() string { return "hosts" }

// blockedHosts returns the names a hosts file already sends nowhere (0.0.0.0, 127.x, ::, ::1).
func blockedHosts(b []byte) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if ip := f[0]; ip == "0.0.0.0" || strings.HasPrefix(ip, "127.") || ip == "::" || ip == "::1" {
			for _, h := range f[1:] {
				out[strings.ToLower(h)] = true
			}
		}
	}
	return out
}

func (s *hosts) Apply(ctx context.Context, t *Target, r *StepReport) error {
	if part, _, _ := strings.Cut(s.file, "/"); t.Overlay(part) == nil {
		// Patching one partition (vendor.img) or a ramdisk alone: there is no hosts file to write.
		r.note(fmt.Sprintf("%s: no %s partition in the target", s.file, part))
		return nil
	}
	old, m, err := t.ReadFile(s.file)
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if !existed {
		old = nil
		m = tree.Meta{Mode: 0o644}
		// Label like its directory's siblings when there are any (system_file on Android).
		dm, err := t.mkdirAll(path.Dir(s.file), r)
		if err != nil {
			return fmt.Errorf("hosts: creating %s: %w", s.file, err)
		}
		m.Xattrs = dm.Xattrs
		m.UID, m.GID, m.ModTime = dm.UID, dm.GID, dm.ModTime
	}
	blocked := blockedHosts(old)
	var buf bytes.Buffer
	buf.Write(old)
	if !existed {
		buf.WriteString("127.0.0.1       localhost\n::1             ip6-localhost\n")
	}
	if buf.Len() > 0 && buf.Bytes()[buf.Len()-1] != '\n' {
		buf.WriteByte('\n')
	}
	var detail []string
	for _, it := range activeItems(s.items, s.keep, r) {
		h := strings.ToLower(it.Value)
		if blocked[h] {
			continue
		}
		blocked[h] = true
		fmt.Fprintf(&buf, "0.0.0.0 %s\n", h)
		detail = append(detail, "+0.0.0.0 "+h)
	}
	if len(detail) == 0 {
		return nil
	}
	return recordEdit(t, r, s.file, old, buf.Bytes(), existed, fixedMeta(m), detail)
}

// ---- props -------------------------------------------------------------------------------------

type props struct {
	set      []PropRule
	del      []Rule
	contains []Rule
	files    []string
}

// defaultPropFiles are where Android keeps build properties (those present are edited).
var defaultPropFiles = []string{
	"system/build.prop", "system/etc/prop.default", "system/default.prop", "vendor/build.prop",
	"vendor/default.prop", "vendor/odm/etc/build.prop", "product/build.prop", "product/etc/build.prop",
	"system_ext/build.prop", "system_ext/etc/build.prop", "odm/build.prop", "odm/etc/build.prop",
	"*ramdisk/prop.default", "*ramdisk/default.prop",
}

func newProps(s StepSpec, keep bool) (Step, error) {
	if len(s.Set) == 0 && len(s.Items) == 0 && len(s.ValueContains) == 0 {
		return nil, errors.New("props needs set (key/value), items (keys to delete) or value_contains")
	}
	for _, p := range s.Set {
		if p.Key == "" || strings.ContainsAny(p.Key, "= \t\n") || strings.ContainsAny(p.Value, "\n") {
			return nil, fmt.Errorf("bad property %q", p.Key)
		}
	}
	files := s.Files
	if len(files) == 0 {
		files = defaultPropFiles
	}
	return &props{set: s.Set, del: activeItems(s.Items, keep, nil), contains: activeItems(s.ValueContains, keep, nil), files: files}, nil
}

func (*props) Kind() string { return "props" }

func (s *props) Apply(ctx context.Context, t *Target, r *StepReport) error {
	var files []string
	for _, g := range s.files {
		m, err := t.Glob(g)
		if err != nil {
			return err
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		r.note("no property files present")
		return nil
	}
	setDone := map[string]bool{}
	for _, f := range files {
		old, m, err := t.ReadFile(f)
		if err != nil {
			return err
		}
		lines := strings.SplitAfter(string(old), "\n")
		var out strings.Builder
		var detail []string
		for _, ln := range lines {
			key, val, isProp := strings.Cut(strings.TrimSpace(ln), "=")
			key = strings.TrimSpace(key)
			if !isProp || strings.HasPrefix(strings.TrimSpace(ln), "#") {
				out.WriteString(ln)
				continue
			}
			drop := false
			for _, d := range s.del {
				if d.Value == key || isGlob(d.Value) && GlobMatch(d.Value, key) {
					drop = true
				}
			}
			for _, c := range s.contains {
				if containsName(val, c.Value) {
					drop = true
				}
			}
			if drop {
				detail = append(detail, "-"+key)
			}
			if drop {
				continue
			}
			replaced := false
			for _, p := range s.set {
				if p.Key == key {
					setDone[key] = true
					nl := p.Key + "=" + p.Value
					if strings.TrimRight(ln, "\r\n") != nl {
						detail = append(detail, "~"+nl)
					}
					out.WriteString(nl + "\n")
					replaced = true
					break
				}
			}
			if !replaced {
				out.WriteString(ln)
			}
		}
		new := out.String()
		if err := recordEdit(t, r, f, old, []byte(new), true, fixedMeta(m), detail); err != nil {
			return err
		}
	}
	// Keys not present anywhere are added to the first file (system's build.prop when present).
	var add []string
	for _, p := range s.set {
		if !setDone[p.Key] {
			add = append(add, p.Key+"="+p.Value)
		}
	}
	if len(add) > 0 {
		f := files[0]
		old, m, err := t.ReadFile(f)
		if err != nil {
			return err
		}
		new := string(old)
		if new != "" && !strings.HasSuffix(new, "\n") {
			new += "\n"
		}
		var detail []string
		for _, a := range add {
			new += a + "\n"
			detail = append(detail, "+"+a)
		}
		return recordEdit(t, r, f, old, []byte(new), true, fixedMeta(m), detail)
	}
	return nil
}

// ---- xml ---------------------------------------------------------------------------------------

type xmlStep struct {
	files     []string
	element   string
	attribute string
	values    map[string]bool
}

func newXML(s StepSpec, keep bool) (Step, error) {
	if len(s.Files) == 0 || s.Attribute == "" || len(s.Items) == 0 {
		return nil, errors.New("xml needs files, attribute and items (attribute values)")
	}
	v := map[string]bool{}
	for _, it := range activeItems(s.Items, keep, nil) {
		v[it.Value] = true
	}
	return &xmlStep{files: s.Files, element: s.Element, attribute: s.Attribute, values: v}, nil
}

func (*xmlStep) Kind() string { return "xml" }

func (s *xmlStep) Apply(ctx context.Context, t *Target, r *StepReport) error {
	for _, g := range s.files {
		files, err := t.Glob(g)
		if err != nil {
			return err
		}
		for _, f := range files {
			if err := removeXMLElements(t, r, f, s.element, s.attribute, s.values); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeXMLElements deletes elements (named element, or any when "") whose attribute is in values,
// leaving every other byte of the file as it was.
func removeXMLElements(t *Target, r *StepReport, f, element, attribute string, values map[string]bool) error {
	old, m, err := t.ReadFile(f)
	if err != nil {
		return err
	}
	spans, detail, err := xmlSpans(old, element, attribute, values)
	if err != nil {
		r.note(fmt.Sprintf("%s: not valid XML, left alone (%v)", f, err))
		return nil
	}
	if len(spans) == 0 {
		return nil
	}
	var out []byte
	last := 0
	for _, sp := range spans {
		start := sp[0]
		// Take the indentation before the element with it, and the newline after.
		for start > last && (old[start-1] == ' ' || old[start-1] == '\t') {
			start--
		}
		end := sp[1]
		if end < len(old) && old[end] == '\r' {
			end++
		}
		if end < len(old) && old[end] == '\n' {
			end++
		}
		out = append(out, old[last:start]...)
		last = end
	}
	out = append(out, old[last:]...)
	return recordEdit(t, r, f, old, out, true, fixedMeta(m), detail)
}

// xmlSpans finds the byte ranges of matching elements (outermost only).
func xmlSpans(b []byte, element, attribute string, values map[string]bool) ([][2]int, []string, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = false
	var spans [][2]int
	var detail []string
	depth, matchDepth, matchStart := 0, -1, 0
	for {
		off := int(d.InputOffset())
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		switch e := tok.(type) {
		case xml.StartElement:
			depth++
			if matchDepth < 0 && (element == "" || e.Name.Local == element) {
				for _, a := range e.Attr {
					if a.Name.Local == attribute && values[a.Value] {
						matchDepth, matchStart = depth, off
						detail = append(detail, fmt.Sprintf("-<%s %s=%q>", e.Name.Local, attribute, a.Value))
					}
				}
			}
		case xml.EndElement:
			if depth == matchDepth {
				spans = append(spans, [2]int{matchStart, int(d.InputOffset())})
				matchDepth = -1
			}
			depth--
		}
	}
	return spans, detail, nil
}

// ---- init --------------------------------------------------------------------------------------

type initStep struct {
	items    []Rule
	contains []Rule
	action   string
	files    []string
	keep     bool
}

var defaultRCFiles = []string{"*/etc/init/*.rc", "*/etc/init/hw/*.rc", "*/*.rc"}

func newInit(s StepSpec, keep bool) (Step, error) {
	if len(s.Items) == 0 && len(s.ValueContains) == 0 {
		return nil, errors.New("init needs items (service names) or value_contains")
	}
	a := s.Action
	if a == "" {
		a = "disable"
	}
	if a != "disable" && a != "remove" {
		return nil, fmt.Errorf("init action %q must be disable or remove", a)
	}
	files := s.Files
	if len(files) == 0 {
		files = defaultRCFiles
	}
	return &initStep{items: s.Items, contains: activeItems(s.ValueContains, keep, nil), action: a, files: files, keep: keep}, nil
}

func (*initStep) Kind() string { return "init" }

var sectionRE = regexp.MustCompile(`^\s*(service|on|import)\s`)

// EditRC disables or removes the named services in an init .rc text, and comments out explicit
// `start`/`restart` of them. It returns the new text and what changed. The boot package uses it for
// ramdisk .rc files.
func EditRC(text string, services map[string]bool, remove bool) (string, []string) {
	lines := strings.SplitAfter(text, "\n")
	var out strings.Builder
	var detail []string
	inService := ""
	hasDisabled := false
	var block []string
	flush := func() {
		if inService == "" {
			return
		}
		if remove {
			detail = append(detail, "removed service "+inService)
		} else {
			out.WriteString(block[0])
			if !hasDisabled {
				indent := "    "
				if len(block) > 1 {
					indent = block[1][:len(block[1])-len(strings.TrimLeft(block[1], " \t"))]
					if indent == "" {
						indent = "    "
					}
				}
				out.WriteString(indent + "disabled\n")
				detail = append(detail, "disabled service "+inService)
			}
			for _, l := range block[1:] {
				out.WriteString(l)
			}
		}
		inService, hasDisabled, block = "", false, nil
	}
	for _, ln := range lines {
		trim := strings.TrimSpace(ln)
		if sectionRE.MatchString(ln) {
			flush()
			f := strings.Fields(trim)
			if f[0] == "service" && len(f) > 1 && services[f[1]] {
				inService = f[1]
				if !strings.HasSuffix(ln, "\n") {
					ln += "\n"
				}
				block = []string{ln}
				continue
			}
		}
		if inService != "" {
			if trim == "disabled" {
				hasDisabled = true
			}
			block = append(block, ln)
			continue
		}
		f := strings.Fields(trim)
		if len(f) == 2 && (f[0] == "start" || f[0] == "restart") && services[f[1]] {
			indent := ln[:len(ln)-len(strings.TrimLeft(ln, " \t"))]
			out.WriteString(indent + "# romforge: " + trim + "\n")
			detail = append(detail, "commented out "+trim)
			continue
		}
		out.WriteString(ln)
	}
	flush()
	return out.String(), detail
}

func (s *initStep) Apply(ctx context.Context, t *Target, r *StepReport) error {
	svc := map[string]bool{}
	for _, it := range activeItems(s.items, s.keep, r) {
		svc[it.Value] = true
	}
	seen := map[string]bool{}
	for _, g := range s.files {
		files, err := t.Glob(g)
		if err != nil {
			return err
		}
		for _, f := range files {
			if seen[f] {
				continue
			}
			seen[f] = true
			m, err := t.Meta(f)
			if err != nil || !m.Mode.IsRegular() {
				continue
			}
			old, m, err := t.ReadFile(f)
			if err != nil {
				return err
			}
			names := svc
			if len(s.contains) > 0 {
				names = map[string]bool{}
				for k := range svc {
					names[k] = true
				}
				for _, n := range servicesMatching(string(old), s.contains) {
					names[n] = true
				}
			}
			new, detail := EditRC(string(old), names, s.action == "remove")
			if err := recordEdit(t, r, f, old, []byte(new), true, fixedMeta(m), detail); err != nil {
				return err
			}
		}
	}
	return nil
}

// servicesMatching returns the services whose "service NAME PATH ARGS…" line contains one of the strings.
func servicesMatching(text string, contains []Rule) []string {
	var out []string
	for _, ln := range strings.Split(text, "\n") {
		f := strings.Fields(ln)
		if len(f) < 3 || f[0] != "service" {
			continue
		}
		cmd := strings.ToLower(strings.Join(f[2:], " "))
		for _, c := range contains {
			if containsName(cmd, c.Value) {
				out = append(out, f[1])
				break
			}
		}
	}
	return out
}

// ---- replace -----------------------------------------------------------------------------------

type replaceStep struct {
	files []string
	reps  []Replacement
}

func newReplace(s StepSpec, keep bool) (Step, error) {
	if len(s.Files) == 0 || len(s.Replacements) == 0 {
		return nil, errors.New("replace needs files and replacements")
	}
	for _, rp := range s.Replacements {
		if rp.From == "" {
			return nil, errors.New("a replacement has an empty from")
		}
	}
	return &replaceStep{files: s.Files, reps: s.Replacements}, nil
}

func (*replaceStep) Kind() string { return "replace" }

func isBinary(b []byte) bool { return bytes.IndexByte(b[:min(len(b), 8192)], 0) >= 0 }

func (s *replaceStep) Apply(ctx context.Context, t *Target, r *StepReport) error {
	for _, g := range s.files {
		files, err := t.Glob(g)
		if err != nil {
			return err
		}
		for _, f := range files {
			m, err := t.Meta(f)
			if err != nil || !m.Mode.IsRegular() {
				continue
			}
			old, m, err := t.ReadFile(f)
			if err != nil {
				return err
			}
			bin := isBinary(old)
			new := old
			var detail []string
			for _, rp := range s.reps {
				n := bytes.Count(new, []byte(rp.From))
				if n == 0 {
					continue
				}
				if bin && len(rp.From) != len(rp.To) {
					return fmt.Errorf("replace: %s is binary and %q → %q changes the length; refusing (pad the replacement to %d bytes)", f, rp.From, rp.To, len(rp.From))
				}
				new = bytes.ReplaceAll(new, []byte(rp.From), []byte(rp.To))
				detail = append(detail, fmt.Sprintf("%q → %q ×%d", rp.From, rp.To, n))
			}
			if err := recordEdit(t, r, f, old, new, true, fixedMeta(m), detail); err != nil {
				return err
			}
		}
	}
	return nil
}

// EditInitText applies the init steps of sets to one .rc file's text (for init scripts that live in a
// boot image's ramdisk rather than in a filesystem) and says what changed.
func EditInitText(text string, sets []*Set) (string, []string) {
	var all []string
	for _, s := range sets {
		for _, spec := range s.Steps {
			if spec.Kind != "init" {
				continue
			}
			st, err := compile(spec, s.KeepBootCritical)
			if err != nil {
				continue
			}
			is := st.(*initStep)
			names := map[string]bool{}
			for _, it := range activeItems(is.items, is.keep, nil) {
				names[it.Value] = true
			}
			for _, n := range servicesMatching(text, is.contains) {
				names[n] = true
			}
			var d []string
			text, d = EditRC(text, names, is.action == "remove")
			all = append(all, d...)
		}
	}
	return text, all
}

// containsName reports whether s contains v (any letter case). A dotted v (a domain) must stand as whole
// labels, so xiaomi.com matches api.xiaomi.com but not notxiaomi.com, and mi.com not www.miami.com.
func containsName(s, v string) bool {
	s, v = strings.ToLower(s), strings.ToLower(v)
	if !strings.Contains(v, ".") {
		return strings.Contains(s, v)
	}
	label := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' }
	for i := 0; ; {
		j := strings.Index(s[i:], v)
		if j < 0 {
			return false
		}
		at, end := i+j, i+j+len(v)
		if (at == 0 || !label(s[at-1])) && (end == len(s) || !label(s[end])) {
			return true
		}
		i = at + 1
	}
}
