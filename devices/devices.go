package devices

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/romforge/romforge/internal/failure"
)

//go:embed catalog/*.yaml
var catalogFS embed.FS

// Device is one handset.
type Device struct {
	Codename string   `yaml:"codename" json:"codename"`
	Aliases  []string `yaml:"aliases" json:"aliases"`
	Vendor   string   `yaml:"vendor" json:"vendor"`
	Names    []string `yaml:"names" json:"names"`
	SoC      string   `yaml:"soc" json:"soc"`
	// Products are the values `fastboot getvar product` answers on this device.
	Products []string `yaml:"products" json:"products"`
	AB       bool     `yaml:"ab" json:"ab"`
	Dynamic  bool     `yaml:"dynamic" json:"dynamic"`
	// Super describes the dynamic-partitions container when Dynamic.
	Super      *Super      `yaml:"super" json:"super"`
	Partitions []Partition `yaml:"partitions" json:"partitions"`
	// Table says where the sizes of the physical partitions come from; nil when only the partitions
	// romforge writes are known (a flash then relies on the phone's own partition-size answers).
	Table        *Table       `yaml:"table" json:"table,omitempty"`
	AntiRollback AntiRollback `yaml:"anti_rollback" json:"anti_rollback"`
	// MaxDownloadSize is the bootloader's typical max-download-size in bytes.
	MaxDownloadSize int64    `yaml:"max_download_size" json:"max_download_size"`
	USBIDs          []USBID  `yaml:"usb_ids" json:"usb_ids"`
	Sources         []Source `yaml:"sources" json:"sources"`
	Notes           string   `yaml:"notes" json:"notes,omitempty"`
	// BlockDir is where recovery finds partitions by name (default /dev/block/bootdevice/by-name).
	BlockDir string `yaml:"block_dir" json:"block_dir,omitempty"`
	// Origin is where the entry came from: "builtin" or the path of a user catalog file.
	Origin string `yaml:"-" json:"origin"`

	file string // catalog file it came from, for messages
}

// Super is the dynamic partitions container.
type Super struct {
	Size          int64   `yaml:"size" json:"size"`
	MetadataSize  int64   `yaml:"metadata_size" json:"metadata_size"`
	MetadataSlots int     `yaml:"metadata_slots" json:"metadata_slots"`
	VirtualAB     bool    `yaml:"virtual_ab" json:"virtual_ab"`
	Groups        []Group `yaml:"groups" json:"groups"`
}

// Group is a group of logical partitions in super with a size cap.
type Group struct {
	Name    string `yaml:"name" json:"name"`
	MaxSize int64  `yaml:"max_size" json:"max_size"`
}

// Partition is one partition the tools may read or write.
type Partition struct {
	Name string `yaml:"name" json:"name"`
	// Size in bytes, 0 when not known (logical partitions are sized by the ROM).
	Size int64 `yaml:"size" json:"size,omitempty"`
	// FS is the filesystem: ext4, erofs, f2fs or raw.
	FS      string `yaml:"fs" json:"fs"`
	Logical bool   `yaml:"logical" json:"logical"`
	Group   string `yaml:"group" json:"group,omitempty"`
	// NoSlot marks a partition an A/B phone has once, without _a/_b (userdata, persist, misc,
	// modemst1, …): has-slot answers no and it is written under its bare name.
	NoSlot bool `yaml:"no_slot" json:"no_slot,omitempty"`
}

// Table is the provenance of a device's partition list.
type Table struct {
	// From is the kind of record: getvar (the bootloader's own getvar all answers), partition.xml or
	// rawprogram (the firmware's Qualcomm layout), scatter (MediaTek's layout), gpt (a phone's
	// partition listing).
	From string `yaml:"from" json:"from"`
	// Source cites it: a URL, or owner/repo/path@commit.
	Source string `yaml:"source" json:"source"`
	// Complete says every physical partition of that record is listed with its size. Sizes that grow to
	// fill the storage (userdata on a layout file) are the phone's to answer and may be absent.
	Complete bool `yaml:"complete" json:"complete"`
	// Origin is the user catalog file that added the table, "" for the builtin one.
	Origin string `yaml:"-" json:"origin,omitempty"`
}

// AntiRollback says whether and how the bootloader enforces anti-rollback.
type AntiRollback struct {
	Enforced bool `yaml:"enforced" json:"enforced"`
	// Var is the getvar the bootloader answers it with: "anti" (Qualcomm Xiaomi) or "rollback_ver" (MediaTek).
	Var string `yaml:"var" json:"var,omitempty"`
}

// USBID is a USB vendor/product pair the device shows in fastboot mode.
type USBID struct {
	Vendor  Hex16 `yaml:"vendor" json:"vendor"`
	Product Hex16 `yaml:"product" json:"product"`
}

// Hex16 is a 16-bit id written as 0x-hex in JSON.
type Hex16 uint16

// MarshalJSON implements json.Marshaler.
func (h Hex16) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("\"0x%04x\"", uint16(h))), nil
}

// Source is where community builds for the device are published.
type Source struct {
	Name string `yaml:"name" json:"name"`
	// Kind is "github" (releases), "lineage-api" (download.lineageos.org) or "ota-json" (a per-device
	// OTA JSON as read by the LineageOS Updater and its forks, at url or at repo/path@ref on GitHub).
	Kind string `yaml:"kind" json:"kind"`
	// Repo is owner/name for github sources, and for ota-json sources read through GitHub's contents API.
	Repo string `yaml:"repo" json:"repo,omitempty"`
	// Path and Ref locate an ota-json file inside Repo (Ref "" is the default branch).
	Path string `yaml:"path" json:"path,omitempty"`
	Ref  string `yaml:"ref" json:"ref,omitempty"`
	// Asset is a regexp the release asset's file name must match.
	Asset string `yaml:"asset" json:"asset,omitempty"`
	// Checksum is where the expected hash comes from: "sidecar" (an asset named ROM+suffix),
	// "body" (lines in the release text), "auto" (sidecar, else body), "api" (lineage-api's sha256
	// field), "json" (an ota-json entry's sha256, else md5) or "none".
	Checksum string `yaml:"checksum" json:"checksum"`
	// ChecksumSuffix is the sidecar's suffix (".sha256", ".sha256sum", ".md5sum"); empty tries all.
	ChecksumSuffix string `yaml:"checksum_suffix" json:"checksum_suffix,omitempty"`
	// URL is the API URL of lineage-api sources and the file URL of ota-json sources.
	URL string `yaml:"url" json:"url,omitempty"`
	// Family is the ROM family: lineageos, pixelexperience, crdroid, evolution, miui, hyperos, …
	Family string `yaml:"family" json:"family"`
	// SignerSHA256 pins the SHA-256 of certificates allowed to sign this source's OTA zips.
	SignerSHA256 []string `yaml:"signer_sha256" json:"signer_sha256,omitempty"`
	// Origin is where the source came from: "builtin", a user catalog file, or "command line".
	Origin string `yaml:"-" json:"origin,omitempty"`
}

// Partition returns the named partition.
func (d *Device) Partition(name string) (Partition, bool) {
	for _, p := range d.Partitions {
		if p.Name == name {
			return p, true
		}
	}
	return Partition{}, false
}

// Source returns the named release source ("" picks the first).
func (d *Device) Source(name string) (Source, bool) {
	for _, s := range d.Sources {
		if name == "" || s.Name == name {
			return s, true
		}
	}
	return Source{}, false
}

// MediaTek says the phone has a MediaTek SoC, whose bootloader (lk) answers sizes in hex without 0x.
func (d *Device) MediaTek() bool { return strings.HasPrefix(d.SoC, "MediaTek") }

// BlockPrefix is the by-name folder of the device's partitions, for recovery scripts.
func (d *Device) BlockPrefix() string {
	if d.BlockDir != "" {
		return d.BlockDir
	}
	return "/dev/block/bootdevice/by-name"
}

// DisplayName is the first marketing name, or the codename.
func (d *Device) DisplayName() string {
	if len(d.Names) > 0 {
		return d.Names[0]
	}
	return d.Codename
}

// ErrUnknownDevice wraps lookups that found nothing.
var ErrUnknownDevice = errors.New("unknown device")

// NotFoundError says a name matched no device and offers the nearest names.
type NotFoundError struct {
	Name    string
	Nearest []string
}

func (e *NotFoundError) Error() string {
	msg := fmt.Sprintf("unknown device %q", e.Name)
	if len(e.Nearest) > 0 {
		msg += "; did you mean " + strings.Join(e.Nearest, ", ") + "?"
	}
	return msg + " ('romforge devices' lists all)"
}

// Unwrap makes the error match ErrUnknownDevice and the usage kind (exit 2).
func (e *NotFoundError) Unwrap() []error { return []error{ErrUnknownDevice, failure.ErrUsage} }

// Catalog is a loaded set of devices.
type Catalog struct {
	Devices []*Device
}

var (
	builtinOnce sync.Once
	builtin     *Catalog
	builtinErr  error
)

// Builtin returns the catalog embedded in the binary.
func Builtin() (*Catalog, error) {
	builtinOnce.Do(func() {
		sub, _ := fs.Sub(catalogFS, "catalog")
		builtin, builtinErr = Load(sub)
		if builtinErr == nil {
			for _, d := range builtin.Devices {
				d.Origin = "builtin"
				for i := range d.Sources {
					d.Sources[i].Origin = "builtin"
				}
			}
		}
	})
	return builtin, builtinErr
}

// Load reads every *.yaml file of fsys and validates the whole catalog.
func Load(fsys fs.FS) (*Catalog, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	c := &Catalog{}
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		d, err := Parse(n, b)
		if err != nil {
			return nil, err
		}
		c.Devices = append(c.Devices, d)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse decodes one device file strictly; errors carry the file name and line.
func Parse(file string, b []byte) (*Device, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	d := &Device{file: file}
	if err := dec.Decode(d); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty device file", file)
		}
		return nil, fmt.Errorf("%s: %v", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: only one YAML document per device file", file)
	}
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return d, nil
}

var (
	codenameRE   = regexp.MustCompile(`^[a-z0-9_]+$`)
	sourceNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	fsKinds      = map[string]bool{"ext4": true, "erofs": true, "f2fs": true, "raw": true}
	tableKinds   = map[string]bool{"getvar": true, "partition.xml": true, "rawprogram": true, "scatter": true, "gpt": true}
)

func (d *Device) validate() error {
	var problems []string
	bad := func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) }
	if d.Codename == "" {
		bad("codename is required")
	} else if !codenameRE.MatchString(d.Codename) {
		bad("codename %q must be lower-case letters, digits and _", d.Codename)
	}
	if base := strings.TrimSuffix(path.Base(d.file), ".yaml"); d.file != "" && d.Codename != "" && base != d.Codename {
		bad("file name %q does not match codename %q", d.file, d.Codename)
	}
	if d.Vendor == "" {
		bad("vendor is required")
	}
	if len(d.Names) == 0 {
		bad("names: at least one marketing name is required")
	}
	if d.SoC == "" {
		bad("soc is required")
	}
	if len(d.Products) == 0 {
		bad("products: at least one fastboot product value is required")
	}
	if len(d.Partitions) == 0 {
		bad("partitions: at least one partition is required")
	}
	seen := map[string]bool{}
	groups := map[string]bool{}
	if d.Super != nil {
		for _, g := range d.Super.Groups {
			groups[g.Name] = true
			if d.Super.Size > 0 && g.MaxSize > d.Super.Size {
				bad("super group %s max_size %d exceeds super size %d", g.Name, g.MaxSize, d.Super.Size)
			}
		}
	}
	if d.Dynamic && d.Super == nil {
		bad("dynamic devices need a super section")
	}
	for _, p := range d.Partitions {
		if p.Name == "" {
			bad("a partition has no name")
		}
		if seen[p.Name] {
			bad("partition %s listed twice", p.Name)
		}
		seen[p.Name] = true
		if !fsKinds[p.FS] {
			bad("partition %s: fs %q is not one of ext4, erofs, f2fs, raw", p.Name, p.FS)
		}
		if p.Logical && !d.Dynamic {
			bad("partition %s is logical but the device has no dynamic partitions", p.Name)
		}
		if p.Group != "" && !groups[p.Group] {
			bad("partition %s: group %q is not in super.groups", p.Name, p.Group)
		}
		if p.Size < 0 {
			bad("partition %s: negative size", p.Name)
		}
		if p.NoSlot && !d.AB {
			bad("partition %s: no_slot only applies to A/B devices (every partition of an A-only device has no slot)", p.Name)
		}
		if p.NoSlot && p.Logical {
			bad("partition %s: logical partitions of an A/B device are slotted; drop no_slot", p.Name)
		}
	}
	if t := d.Table; t != nil {
		if !tableKinds[t.From] {
			bad("table.from %q must be one of getvar, partition.xml, rawprogram, scatter, gpt", t.From)
		}
		if t.Source == "" {
			bad("table.source is required: cite where the partition sizes come from")
		}
		for _, p := range d.Partitions {
			if t.Complete && !p.Logical && p.Size == 0 {
				bad("partition %s has no size but table.complete says every partition is sized", p.Name)
			}
			if d.AB && (strings.HasSuffix(p.Name, "_a") || strings.HasSuffix(p.Name, "_b")) {
				bad("partition %s: list a slotted partition once, without its _a/_b suffix", p.Name)
			}
			if p.Name == "super" && d.Super != nil && d.Super.Size > 0 && p.Size != d.Super.Size {
				bad("partition super is %d bytes in the table but super.size says %d", p.Size, d.Super.Size)
			}
		}
	}
	switch d.AntiRollback.Var {
	case "", "anti", "rollback_ver":
	default:
		bad("anti_rollback.var %q must be anti or rollback_ver", d.AntiRollback.Var)
	}
	if d.AntiRollback.Enforced && d.AntiRollback.Var == "" {
		bad("anti_rollback.enforced needs anti_rollback.var")
	}
	srcNames := map[string]bool{}
	for i, s := range d.Sources {
		if s.Name == "" {
			bad("sources[%d]: name is required", i)
		}
		if s.Name != "" && !sourceNameRE.MatchString(s.Name) {
			bad("sources: name %q must be lower-case letters, digits, '.', '_' and '-' (it names CI jobs and release assets)", s.Name)
		}
		if srcNames[s.Name] {
			bad("sources: name %q used twice", s.Name)
		}
		srcNames[s.Name] = true
		bad2 := func(msg string) { bad("source %s: %s", s.Name, msg) }
		for _, msg := range s.problems() {
			bad2(msg)
		}
		if s.Family == "" {
			bad("source %s: family is required", s.Name)
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

var httpURL = regexp.MustCompile(`^https?://[^\s/]+`)

// problems lists what is wrong with one source entry (the catalog's rules, also applied to --source).
func (s *Source) problems() []string {
	var out []string
	bad := func(f string, a ...any) { out = append(out, fmt.Sprintf(f, a...)) }
	switch s.Kind {
	case "github":
		if strings.Count(s.Repo, "/") != 1 || strings.HasPrefix(s.Repo, "/") || strings.HasSuffix(s.Repo, "/") {
			bad("repo must be owner/name")
		}
		if s.Asset == "" {
			bad("asset regexp is required")
		} else if _, err := regexp.Compile(s.Asset); err != nil {
			bad("asset regexp: %v", err)
		}
		switch s.Checksum {
		case "sidecar", "body", "auto", "none":
		default:
			bad("checksum must be sidecar, body, auto or none")
		}
	case "lineage-api":
		if !httpURL.MatchString(s.URL) {
			bad("url must be an http(s) URL")
		}
		if s.Checksum != "api" && s.Checksum != "" {
			bad("lineage-api sources take their checksum from the API (checksum: api)")
		}
	case "ota-json":
		switch {
		case s.URL != "" && s.Repo != "":
			bad("give url or repo+path, not both")
		case s.URL != "":
			if !httpURL.MatchString(s.URL) {
				bad("url must be an http(s) URL")
			}
		case s.Repo != "":
			if strings.Count(s.Repo, "/") != 1 || strings.HasPrefix(s.Repo, "/") || strings.HasSuffix(s.Repo, "/") {
				bad("repo must be owner/name")
			}
			if s.Path == "" || strings.HasPrefix(s.Path, "/") || strings.Contains(s.Path, "..") {
				bad("path must be a file path inside the repository")
			}
		default:
			bad("url (or repo and path) is required")
		}
		if s.Checksum != "json" && s.Checksum != "" {
			bad("ota-json sources take their checksum from the JSON (checksum: json)")
		}
	default:
		bad("kind %q must be github, lineage-api or ota-json", s.Kind)
	}
	return out
}

// Validate checks a source given outside the catalog (--source), with the catalog's rules.
func (s *Source) Validate() error {
	if p := s.problems(); len(p) > 0 {
		return failure.Kinded(failure.ErrUsage, fmt.Errorf("source %s: %s", s.Name, strings.Join(p, "; ")))
	}
	return nil
}

func (c *Catalog) validate() error {
	owner := map[string]string{}
	for _, d := range c.Devices {
		for _, k := range append([]string{d.Codename}, d.Aliases...) {
			k = strings.ToLower(k)
			if o, dup := owner[k]; dup {
				return fmt.Errorf("%s: %q is already used by %s", d.file, k, o)
			}
			owner[k] = d.file
		}
	}
	return nil
}

func norm(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '-' || r == '_' }), " ")
}

// Lookup finds a device by codename, alias or marketing name, case-insensitively.
func (c *Catalog) Lookup(name string) (*Device, error) {
	n := norm(name)
	for _, d := range c.Devices {
		if norm(d.Codename) == n {
			return d, nil
		}
	}
	for _, d := range c.Devices {
		for _, k := range d.Aliases {
			if norm(k) == n {
				return d, nil
			}
		}
	}
	for _, d := range c.Devices {
		for _, k := range d.Names {
			if norm(k) == n || norm(d.Vendor+" "+k) == n {
				return d, nil
			}
		}
	}
	return nil, &NotFoundError{Name: name, Nearest: c.Nearest(name, 3)}
}

// ByProduct returns the devices whose fastboot product list contains product.
func (c *Catalog) ByProduct(product string) []*Device {
	var out []*Device
	for _, d := range c.Devices {
		for _, p := range d.Products {
			if strings.EqualFold(p, product) {
				out = append(out, d)
				break
			}
		}
	}
	return out
}

// Nearest returns up to n known names (codenames, aliases, marketing names) closest to name.
func (c *Catalog) Nearest(name string, n int) []string {
	type cand struct {
		name string
		dist int
	}
	q := norm(name)
	best := map[string]int{}
	for _, d := range c.Devices {
		for _, k := range append(append([]string{d.Codename}, d.Aliases...), d.Names...) {
			dist := levenshtein(q, norm(k))
			if strings.Contains(norm(k), q) && q != "" {
				dist = min(dist, len(norm(k))-len(q))
			}
			if old, ok := best[k]; !ok || dist < old {
				best[k] = dist
			}
		}
	}
	var cs []cand
	for k, v := range best {
		cs = append(cs, cand{k, v})
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].dist != cs[j].dist {
			return cs[i].dist < cs[j].dist
		}
		return cs[i].name < cs[j].name
	})
	var out []string
	for _, c := range cs {
		if len(out) == n {
			break
		}
		out = append(out, c.name)
	}
	return out
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
