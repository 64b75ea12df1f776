package audit

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/romforge/romforge/patches"
)

// packageFamily returns the family rule a package belongs to (never a kept one).
func (r *Rules) packageFamily(pkg string) (patches.Rule, bool) {
	for _, k := range r.Keep {
		if patches.GlobMatch(k.Value, pkg) {
			return patches.Rule{}, false
		}
	}
	for _, f := range r.PackageFamilies {
		if patches.GlobMatch(f.Value, pkg) {
			return f, true
		}
	}
	return patches.Rule{}, false
}

func (r *Rules) propFamily(key string) (patches.Rule, bool) {
	for _, f := range r.PropFamilies {
		if patches.GlobMatch(f.Value, key) {
			return f, true
		}
	}
	return patches.Rule{}, false
}

// isPropFile reports whether a file holds Android properties (build.prop, default.prop, prop.default,
// vendor/odm/product/system_ext build.prop, *.prop files in ramdisks).
func isPropFile(name string) bool {
	b := path.Base(name)
	return strings.HasSuffix(b, ".prop") || b == "prop.default"
}

// propFile reports properties of a cloud family and properties whose value names a cloud host; hosts in
// comments are reported as hosts.
func (s *scanner) propFile(base Finding, b []byte) []Finding {
	var out []Finding
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), maxText)
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		key, val, isProp := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !isProp || strings.HasPrefix(line, "#") || key == "" || strings.ContainsAny(key, " \t") {
			fnd, _, _ := s.stream(base, strings.NewReader(line))
			out = append(out, fnd...)
			continue
		}
		if seen[key] {
			continue
		}
		if fam, ok := s.rules.propFamily(key); ok {
			seen[key] = true
			f := base
			f.Kind, f.Match, f.Detail = "prop", key, fmt.Sprintf("line %d: property family %s: %s", ln, fam.Value, fam.Reason)
			out = append(out, f)
			continue
		}
		fnd, _, _ := s.stream(base, strings.NewReader(val))
		if len(fnd) > 0 {
			seen[key] = true
			f := base
			f.Kind, f.Match, f.Host = "prop", key, fnd[0].Match
			f.Detail = fmt.Sprintf("line %d: the value names %s", ln, fnd[0].Match)
			out = append(out, f)
		}
	}
	return out
}

// rcService is one `service` block of an init script.
type rcService struct {
	name, program string
	disabled      bool
}

type rcFile struct {
	part, name string
	services   []rcService
	starts     []string // services started by `start`/`restart` (uncommented)
}

// parseRC reads the service blocks of an init script (init's language: a section starts with
// service/on/import; options follow on indented lines).
func parseRC(text string) []rcService {
	var out []rcService
	cur := -1
	for _, ln := range strings.Split(text, "\n") {
		f := strings.Fields(ln)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "service":
			cur = -1
			if len(f) >= 3 {
				out = append(out, rcService{name: f[1], program: f[2]})
				cur = len(out) - 1
			}
			continue
		case "on", "import":
			cur = -1
			continue
		}
		if cur >= 0 && f[0] == "disabled" {
			out[cur].disabled = true
		}
	}
	return out
}

// rcStarts lists the services an init script starts explicitly.
func rcStarts(text string) []string {
	var out []string
	for _, ln := range strings.Split(text, "\n") {
		f := strings.Fields(ln)
		if len(f) == 2 && (f[0] == "start" || f[0] == "restart") {
			out = append(out, f[1])
		}
	}
	return out
}

// ProgramCandidates are the (partition, path in its tree) places a device path can live in, given the
// scanned partitions (a system-as-root image holds /system/bin/x as system/bin/x; a ramdisk holds /sbin/x
// as sbin/x; /system/vendor/x is /vendor/x).
func ProgramCandidates(program, rcPart string, parts []string) [][2]string {
	p := path.Clean("/" + program)
	var out [][2]string
	if strings.HasPrefix(p, "/system/vendor/") {
		p = strings.TrimPrefix(p, "/system")
	}
	for _, part := range parts {
		if patches.IsRamdisk(part) {
			continue
		}
		if rest, ok := strings.CutPrefix(p, "/"+part+"/"); ok {
			out = append(out, [2]string{part, rest}, [2]string{part, part + "/" + rest})
		}
	}
	if patches.IsRamdisk(rcPart) {
		out = append(out, [2]string{rcPart, strings.TrimPrefix(p, "/")})
	}
	return out
}

// serviceFindings reports init services that are not disabled (or are started explicitly) and whose
// program holds a cloud host.
func serviceFindings(rc []rcFile, fnd []Finding, parts []string) []Finding {
	hostIn := map[[2]string]string{}
	for _, f := range fnd {
		if f.Kind == "host" && f.Inner == "" {
			if _, ok := hostIn[[2]string{f.Partition, f.Path}]; !ok {
				hostIn[[2]string{f.Partition, f.Path}] = f.Match
			}
		}
	}
	started := map[string]bool{}
	for _, f := range rc {
		for _, s := range f.starts {
			started[s] = true
		}
	}
	sort.Slice(rc, func(i, j int) bool { return rc[i].part+rc[i].name < rc[j].part+rc[j].name })
	var out []Finding
	for _, f := range rc {
		for _, s := range f.services {
			if s.disabled && !started[s.name] {
				continue
			}
			for _, c := range ProgramCandidates(s.program, f.part, parts) {
				if h, ok := hostIn[c]; ok {
					out = append(out, Finding{Partition: f.part, Path: f.name, Kind: "service", Match: s.name, Program: s.program, Host: h,
						Detail: fmt.Sprintf("runs %s, which holds %s", s.program, h)})
					break
				}
			}
		}
	}
	return out
}
