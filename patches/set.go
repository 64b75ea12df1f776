package patches

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/romforge/romforge/internal/failure"
)

//go:embed sets/*.yaml
var builtinFS embed.FS

// Set is a named, ordered list of steps.
type Set struct {
	Name        string    `yaml:"name" json:"name"`
	Description string    `yaml:"description" json:"description"`
	AppliesTo   AppliesTo `yaml:"applies_to" json:"applies_to"`
	// Include names other sets whose steps run first.
	Include []string `yaml:"include" json:"include,omitempty"`
	// KeepBootCritical skips rules marked boot_critical (in this set and the ones it includes): the
	// "-safe" variants keep what some ROMs need to boot.
	KeepBootCritical bool       `yaml:"keep_boot_critical" json:"keep_boot_critical,omitempty"`
	Steps            []StepSpec `yaml:"steps" json:"steps"`
	// AuditDomains are domain families the audit looks for beyond the hosts listed in steps
	// (e.g. "xiaomi.com" matches every *.xiaomi.com name).
	AuditDomains []Rule `yaml:"audit_domains" json:"audit_domains,omitempty"`
	// Families are rules by family rather than by name: what the audit reports and the closure
	// neutralizes on ROMs whose component names no list has seen.
	Families Families `yaml:"families" json:"families,omitzero"`
	// Accept lists findings the user keeps on purpose (a glob over the finding's partition/path, package,
	// property key or host), each with the reason; they are reported as accepted, never silently.
	Accept []Rule `yaml:"accept" json:"accept,omitempty"`

	file string
}

// Families are rules that match by pattern. Host families are the set's audit_domains: a native binary
// or library holding one of them is removed with the init services that run it.
type Families struct {
	// Packages are package-name globs ("com.xiaomi.*"): every installed package matching is removed.
	Packages []Rule `yaml:"packages" json:"packages,omitempty"`
	// Keep are packages (or globs) never removed although a family matches them.
	Keep []Rule `yaml:"keep" json:"keep,omitempty"`
	// Props are property-key globs ("persist.sys.xmsf.*"); a rule's safe_value is set instead of
	// deleting the property.
	Props []Rule `yaml:"props" json:"props,omitempty"`
	// Protect are partition-path globs the closure never removes or edits (the boot class path): what
	// the audit finds there is accepted with the rule's reason.
	Protect []Rule `yaml:"protect" json:"protect,omitempty"`
}

// IsZero reports whether no family rule is set.
func (f Families) IsZero() bool {
	return len(f.Packages)+len(f.Keep)+len(f.Props)+len(f.Protect) == 0
}

// AppliesTo restricts a set to ROM families and devices; empty lists mean any.
type AppliesTo struct {
	Families []string `yaml:"families" json:"families,omitempty"`
	Devices  []string `yaml:"devices" json:"devices,omitempty"`
}

// Rule is one listed item with why it is there and where the fact comes from.
type Rule struct {
	// Value is the package name, hostname, path, prop key, service name or domain.
	Value  string `yaml:"value" json:"value"`
	Reason string `yaml:"reason" json:"reason"`
	Source string `yaml:"source" json:"source,omitempty"`
	// Breaks names what stops working when the rule applies (Find Device, updater, …).
	Breaks string `yaml:"breaks" json:"breaks,omitempty"`
	// BootCritical marks rules that make some ROMs fail to boot; sets with keep_boot_critical skip them.
	BootCritical bool `yaml:"boot_critical" json:"boot_critical,omitempty"`
	// SafeValue is for property families: the value set instead of deleting the property.
	SafeValue string `yaml:"safe_value" json:"safe_value,omitempty"`
}

// StepSpec is a step as written in YAML; Compile turns it into a Step.
type StepSpec struct {
	Kind string `yaml:"kind" json:"kind"`
	Name string `yaml:"name" json:"name,omitempty"`
	// Items is the step's list (packages, hosts, paths, services, prop keys to delete, element values).
	Items []Rule `yaml:"items" json:"items,omitempty"`
	// Set is for props: key → value entries.
	Set []PropRule `yaml:"set" json:"set,omitempty"`
	// Files are globs of partition paths ("system/build.prop", "*/etc/init/*.rc").
	Files []string `yaml:"files" json:"files,omitempty"`
	// Element and Attribute are for xml: remove <Element Attribute="item"> (Element "" = any element).
	Element   string `yaml:"element" json:"element,omitempty"`
	Attribute string `yaml:"attribute" json:"attribute,omitempty"`
	// Action is for init: "disable" (default) or "remove".
	Action string `yaml:"action" json:"action,omitempty"`
	// Replacements are for replace.
	Replacements []Replacement `yaml:"replacements" json:"replacements,omitempty"`
	// HostsFile is for hosts (default system/etc/hosts).
	HostsFile string `yaml:"hosts_file" json:"hosts_file,omitempty"`
	// ValueContains is for props (delete properties whose value contains one of these strings) and init
	// (act on services whose command line contains one of them): it catches endpoints by what they
	// point at rather than by a name list that goes stale.
	ValueContains []Rule `yaml:"value_contains" json:"value_contains,omitempty"`
	// Keep is for remove_packages: packages (or globs) left installed although an item's glob matches.
	Keep []Rule `yaml:"keep" json:"keep,omitempty"`

	line int
}

// PropRule sets one property.
type PropRule struct {
	Key    string `yaml:"key" json:"key"`
	Value  string `yaml:"value" json:"value"`
	Reason string `yaml:"reason" json:"reason"`
	Source string `yaml:"source" json:"source,omitempty"`
}

// Replacement is one literal replacement.
type Replacement struct {
	From   string `yaml:"from" json:"from"`
	To     string `yaml:"to" json:"to"`
	Reason string `yaml:"reason" json:"reason"`
	Source string `yaml:"source" json:"source,omitempty"`
}

// ErrUnknownSet is returned for a set name that is neither built in nor a file.
var ErrUnknownSet = errors.New("unknown patch set")

// Builtin returns the names of the built-in sets, sorted.
func Builtin() []string {
	names, _ := fs.Glob(builtinFS, "sets/*.yaml")
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, strings.TrimSuffix(path.Base(n), ".yaml"))
	}
	sort.Strings(out)
	return out
}

// Load returns the set called nameOrFile: a built-in set's name, or the path of a YAML file.
// Includes are resolved (built-in names, or files relative to the including file).
func Load(nameOrFile string) (*Set, error) {
	return load(nameOrFile, "", map[string]bool{})
}

func load(nameOrFile, relTo string, seen map[string]bool) (*Set, error) {
	var (
		b    []byte
		file string
		err  error
	)
	if strings.HasSuffix(nameOrFile, ".yaml") || strings.HasSuffix(nameOrFile, ".yml") || strings.ContainsRune(nameOrFile, '/') {
		file = nameOrFile
		if relTo != "" && !path.IsAbs(file) {
			file = path.Join(path.Dir(relTo), file)
		}
		b, err = os.ReadFile(file)
	} else {
		file = "sets/" + nameOrFile + ".yaml"
		b, err = builtinFS.ReadFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("%w %q (built-in sets: %s; or pass a YAML file)", ErrUnknownSet, nameOrFile, strings.Join(Builtin(), ", ")))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("patches: %w", err)
	}
	if seen[file] {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("patches: %s includes itself", file))
	}
	seen[file] = true
	s, err := Parse(file, b)
	if err != nil {
		return nil, err
	}
	// Inline includes: their steps first, in order.
	var steps []StepSpec
	var domains []Rule
	var fam Families
	var accept []Rule
	for _, inc := range s.Include {
		is, err := load(inc, file, seen)
		if err != nil {
			return nil, fmt.Errorf("%s: include %s: %w", file, inc, err)
		}
		steps = append(steps, is.Steps...)
		domains = append(domains, is.AuditDomains...)
		fam = fam.merge(is.Families)
		accept = append(accept, is.Accept...)
		// A -safe include keeps its boot-critical rules in the including set too.
		s.KeepBootCritical = s.KeepBootCritical || is.KeepBootCritical
	}
	s.Steps = append(steps, s.Steps...)
	s.AuditDomains = append(domains, s.AuditDomains...)
	s.Families = fam.merge(s.Families)
	s.Accept = append(accept, s.Accept...)
	delete(seen, file)
	return s, nil
}

// Parse decodes one set strictly; errors name the file and line.
func Parse(file string, b []byte) (*Set, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, invalidf("%s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	s := &Set{file: file}
	if err := dec.Decode(s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, invalidf("%s: empty patch set", file)
		}
		return nil, invalidf("%s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	// Record each step's line for messages.
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "steps" {
				for j, st := range root.Content[i+1].Content {
					if j < len(s.Steps) {
						s.Steps[j].line = st.Line
					}
				}
			}
		}
	}
	if s.Name == "" {
		return nil, invalidf("%s: name is required", file)
	}
	if err := s.checkFamilies(); err != nil {
		return nil, invalidf("%s: %v", file, err)
	}
	for i := range s.Steps {
		if _, err := compile(s.Steps[i], false); err != nil {
			return nil, invalidf("%s:%d: step %d (%s): %v", file, s.Steps[i].line, i+1, s.Steps[i].Kind, err)
		}
	}
	return s, nil
}

func invalidf(f string, a ...any) error {
	return failure.Kinded(failure.ErrInvalid, fmt.Errorf("patches: "+f, a...))
}

// Applies reports whether the set is meant for a ROM family and device ("" matches anything).
func (s *Set) Applies(family, device string) bool {
	ok := func(list []string, v string) bool {
		if len(list) == 0 || v == "" {
			return true
		}
		for _, x := range list {
			if strings.EqualFold(x, v) {
				return true
			}
		}
		return false
	}
	return ok(s.AppliesTo.Families, family) && ok(s.AppliesTo.Devices, device)
}

// Hosts returns every hostname the set blocks or rewrites, for the audit.
func (s *Set) Hosts() []string {
	var out []string
	for _, st := range s.Steps {
		if st.Kind == "hosts" {
			for _, r := range st.Items {
				out = append(out, r.Value)
			}
		}
	}
	return out
}

// Packages returns every package the set removes, for the audit.
func (s *Set) Packages() []Rule {
	var out []Rule
	for _, st := range s.Steps {
		if st.Kind == "remove_packages" {
			for _, r := range st.Items {
				if s.KeepBootCritical && r.BootCritical {
					continue
				}
				out = append(out, r)
			}
		}
	}
	return out
}

func (f Families) merge(g Families) Families {
	return Families{
		Packages: append(append([]Rule(nil), f.Packages...), g.Packages...),
		Keep:     append(append([]Rule(nil), f.Keep...), g.Keep...),
		Props:    append(append([]Rule(nil), f.Props...), g.Props...),
		Protect:  append(append([]Rule(nil), f.Protect...), g.Protect...),
	}
}

// checkFamilies refuses family and accept rules without a value, a valid glob or a reason: a rule
// nobody can explain is one nobody can review.
func (s *Set) checkFamilies() error {
	groups := []struct {
		name  string
		rules []Rule
	}{{"families.packages", s.Families.Packages}, {"families.keep", s.Families.Keep}, {"families.props", s.Families.Props}, {"families.protect", s.Families.Protect}, {"accept", s.Accept}}
	for _, g := range groups {
		for _, r := range g.rules {
			if strings.TrimSpace(r.Value) == "" {
				return fmt.Errorf("%s: a rule has no value", g.name)
			}
			if strings.TrimSpace(r.Reason) == "" {
				return fmt.Errorf("%s: %q needs a reason", g.name, r.Value)
			}
			if _, err := path.Match(strings.ReplaceAll(r.Value, "**", "*"), ""); err != nil {
				return fmt.Errorf("%s: bad glob %q", g.name, r.Value)
			}
		}
	}
	return nil
}

// GlobMatch matches a name against a rule glob: "*", "?" and "[…]" as in path.Match, and "**" for any
// number of path segments. Names without slashes (packages, property keys) match "*" across dots.
func GlobMatch(glob, name string) bool {
	if !strings.Contains(glob, "**") {
		ok, _ := path.Match(glob, name)
		return ok
	}
	gs, ns := strings.Split(glob, "/"), strings.Split(name, "/")
	var match func(gs, ns []string) bool
	match = func(gs, ns []string) bool {
		for len(gs) > 0 {
			if gs[0] == "**" {
				for i := 0; i <= len(ns); i++ {
					if match(gs[1:], ns[i:]) {
						return true
					}
				}
				return false
			}
			if len(ns) == 0 {
				return false
			}
			if ok, _ := path.Match(gs[0], ns[0]); !ok {
				return false
			}
			gs, ns = gs[1:], ns[1:]
		}
		return len(ns) == 0
	}
	return match(gs, ns)
}

// KeptPackage returns the keep rule protecting a package, if any.
func (s *Set) KeptPackage(pkg string) (Rule, bool) {
	for _, r := range s.Families.Keep {
		if GlobMatch(r.Value, pkg) {
			return r, true
		}
	}
	return Rule{}, false
}

// PackageFamily returns the family rule a package belongs to, unless a keep rule protects it.
func (s *Set) PackageFamily(pkg string) (Rule, bool) {
	if _, kept := s.KeptPackage(pkg); kept {
		return Rule{}, false
	}
	for _, r := range s.Families.Packages {
		if GlobMatch(r.Value, pkg) {
			return r, true
		}
	}
	return Rule{}, false
}

// PropFamily returns the family rule a property key belongs to.
func (s *Set) PropFamily(key string) (Rule, bool) {
	for _, r := range s.Families.Props {
		if GlobMatch(r.Value, key) {
			return r, true
		}
	}
	return Rule{}, false
}

// Protected returns the protect rule covering a partition path ("system/framework/framework.jar").
func (s *Set) Protected(p string) (Rule, bool) {
	for _, r := range s.Families.Protect {
		if GlobMatch(r.Value, p) {
			return r, true
		}
	}
	return Rule{}, false
}

// Accepted returns the user's accept rule covering any of the keys of a finding.
func (s *Set) Accepted(keys ...string) (Rule, bool) {
	for _, r := range s.Accept {
		for _, k := range keys {
			if k != "" && GlobMatch(r.Value, k) {
				return r, true
			}
		}
	}
	return Rule{}, false
}

// BootCriticalPackage returns the rule marking a package boot-critical in this set, if any.
func (s *Set) BootCriticalPackage(pkg string) (Rule, bool) {
	for _, st := range s.Steps {
		if st.Kind != "remove_packages" {
			continue
		}
		for _, r := range st.Items {
			if r.BootCritical && GlobMatch(r.Value, pkg) {
				return r, true
			}
		}
	}
	for _, r := range s.Families.Packages {
		if r.BootCritical && GlobMatch(r.Value, pkg) {
			return r, true
		}
	}
	return Rule{}, false
}
