package xiaomi

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/romforge/romforge/internal/failure"
)

// Image is one file under images/.
type Image struct {
	// Name relative to the ROM root, e.g. "images/boot.img".
	Name string `json:"name"`
	Size int64  `json:"size"`
	// Offset of the contents in the (decompressed) tar stream; -1 in a directory ROM. For an uncompressed
	// .tar this is a file offset, so the image can be read in place.
	Offset int64 `json:"offset"`
}

// ROM is a parsed Xiaomi fastboot ROM.
type ROM struct {
	// Root is the ROM's top directory inside the archive ("" when the scripts sit at the top).
	Root string `json:"root"`
	// Compressed says the archive is gzip-compressed (images must be extracted to be read).
	Compressed bool `json:"compressed"`
	// Products from flash_all.sh's product check (or the first script that has one).
	Products []string `json:"products"`
	// AntiVersion from images/anti_version.txt, else CURRENT_ANTI_VER; -1 when the ROM states none.
	AntiVersion int `json:"anti_version"`
	// Steps of the default script (flash_all.sh, else flash_all.bat, else the first script).
	Steps []Step `json:"steps"`
	// Relocks says the default script relocks the bootloader.
	Relocks bool `json:"relocks"`
	// DefaultScript names the script Steps came from.
	DefaultScript string `json:"default_script"`
	// Scripts holds every flash script by file name.
	Scripts map[string]*Script `json:"scripts"`
	Images  []Image            `json:"images"`
	// Misc is misc.txt, when present.
	Misc     string   `json:"misc,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Limits for hostile archives.
const (
	maxEntries = 100000
	maxText    = 1 << 20
)

func invalid(format string, args ...any) error {
	return failure.Kinded(failure.ErrInvalid, fmt.Errorf("xiaomi: "+format, args...))
}

// isScript reports flash_all*.sh / .bat names.
func isScript(base string) bool {
	l := strings.ToLower(base)
	return strings.HasPrefix(l, "flash_all") && (strings.HasSuffix(l, ".sh") || strings.HasSuffix(l, ".bat"))
}

// countingReader tracks the offset in the decompressed tar stream.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// tarStream returns a reader of the tar data in r, decompressing gzip when the magic says so.
func tarStream(r io.Reader) (io.Reader, bool, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(2)
	if len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, false, invalid("gzip: %v", err)
		}
		zr.Multistream(true)
		return zr, true, nil
	}
	return br, false, nil
}

type files struct {
	texts  map[string]string // archive name → contents of scripts, anti_version.txt, misc.txt
	images []Image           // archive names
}

// Read streams a Xiaomi fastboot ROM archive (.tgz or .tar) once, reading the scripts and small text
// files and listing the images without extracting anything.
func Read(ctx context.Context, r io.Reader) (*ROM, error) {
	s, compressed, err := tarStream(r)
	if err != nil {
		return nil, err
	}
	cr := &countingReader{r: s}
	tr := tar.NewReader(cr)
	fl := files{texts: map[string]string{}}
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, invalid("reading the archive: %v", err)
		}
		if n >= maxEntries {
			return nil, invalid("more than %d entries", maxEntries)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		base := path.Base(name)
		off := cr.n
		switch {
		case h.Typeflag != tar.TypeReg:
		case isScript(base) || base == "anti_version.txt" || base == "misc.txt":
			if h.Size > maxText {
				return nil, invalid("%s is %d bytes, larger than a flash script can be", h.Name, h.Size)
			}
			b, err := io.ReadAll(io.LimitReader(tr, maxText))
			if err != nil {
				return nil, invalid("reading %s: %v", h.Name, err)
			}
			fl.texts[name] = string(b)
			if inImages(name) {
				fl.images = append(fl.images, Image{Name: name, Size: h.Size, Offset: off})
			}
		case inImages(name):
			fl.images = append(fl.images, Image{Name: name, Size: h.Size, Offset: off})
		}
	}
	rom, err := assemble(fl)
	if err != nil {
		return nil, err
	}
	rom.Compressed = compressed
	return rom, nil
}

// inImages reports names directly under an images/ directory.
func inImages(name string) bool {
	return path.Base(path.Dir(name)) == "images"
}

// assemble finds the ROM root and parses the scripts.
func assemble(fl files) (*ROM, error) {
	var scripts []string
	for n := range fl.texts {
		if isScript(path.Base(n)) {
			scripts = append(scripts, n)
		}
	}
	slices.Sort(scripts)
	root := ""
	switch {
	case len(scripts) > 0:
		// The shallowest script marks the root.
		slices.SortStableFunc(scripts, func(a, b string) int { return strings.Count(a, "/") - strings.Count(b, "/") })
		root = path.Dir(scripts[0])
	case len(fl.images) > 0:
		root = path.Dir(path.Dir(fl.images[0].Name))
	default:
		return nil, invalid("no flash_all script and no images/ directory: not a Xiaomi fastboot ROM")
	}
	if root == "." {
		root = ""
	}
	rel := func(n string) (string, bool) {
		if root == "" {
			return n, true
		}
		r, ok := strings.CutPrefix(n, root+"/")
		return r, ok
	}
	rom := &ROM{Root: root, AntiVersion: -1, Scripts: map[string]*Script{}, Products: []string{}, Steps: []Step{}, Images: []Image{}}
	for _, im := range fl.images {
		if r, ok := rel(im.Name); ok && path.Dir(r) == "images" {
			im.Name = r
			rom.Images = append(rom.Images, im)
		}
	}
	for _, n := range scripts {
		r, ok := rel(n)
		if !ok || strings.Contains(r, "/") {
			continue
		}
		sc, err := ParseScript(r, fl.texts[n])
		if err != nil {
			return nil, err
		}
		rom.Scripts[r] = sc
	}
	if len(rom.Scripts) == 0 {
		rom.Warnings = append(rom.Warnings, "no flash_all script at the ROM root: no flash plan")
	}
	for _, d := range append([]string{"flash_all.sh", "flash_all.bat"}, sortedKeys(rom.Scripts)...) {
		if sc, ok := rom.Scripts[d]; ok {
			rom.DefaultScript, rom.Steps, rom.Relocks = d, sc.Steps, sc.Relocks
			break
		}
	}
	for _, d := range append([]string{rom.DefaultScript}, sortedKeys(rom.Scripts)...) {
		if sc, ok := rom.Scripts[d]; ok && len(sc.Products) > 0 {
			rom.Products = sc.Products
			break
		}
	}
	for _, d := range append([]string{rom.DefaultScript}, sortedKeys(rom.Scripts)...) {
		if sc, ok := rom.Scripts[d]; ok && sc.AntiVersion >= 0 {
			rom.AntiVersion = sc.AntiVersion
			break
		}
	}
	if t, ok := fl.texts[path.Join(root, "images", "anti_version.txt")]; ok {
		v, err := strconv.Atoi(strings.TrimSpace(t))
		switch {
		case err != nil || v < 0 || v > 1<<20:
			rom.Warnings = append(rom.Warnings, fmt.Sprintf("images/anti_version.txt %q is not a version number", truncate(strings.TrimSpace(t))))
		case rom.AntiVersion >= 0 && rom.AntiVersion != v:
			rom.Warnings = append(rom.Warnings, fmt.Sprintf("images/anti_version.txt says %d but %s sets CURRENT_ANTI_VER=%d; using %d", v, rom.DefaultScript, rom.AntiVersion, v))
			rom.AntiVersion = v
		default:
			rom.AntiVersion = v
		}
	}
	if t, ok := fl.texts[path.Join(root, "misc.txt")]; ok {
		rom.Misc = t
	}
	// Every flashed image must be in the ROM.
	have := map[string]bool{}
	for _, im := range rom.Images {
		have[im.Name] = true
	}
	for _, st := range rom.Steps {
		if st.Op == OpFlash && !have[st.Image] {
			rom.Warnings = append(rom.Warnings, fmt.Sprintf("%s line %d flashes %s, which is not in the ROM", rom.DefaultScript, st.Line, st.Image))
		}
	}
	return rom, nil
}

func sortedKeys(m map[string]*Script) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// Open reads a Xiaomi fastboot ROM from a .tgz/.tar file or an extracted directory.
func Open(ctx context.Context, p string) (*ROM, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return ReadDir(p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(ctx, f)
}

// ReadDir reads an extracted ROM directory (the one holding flash_all.sh and images/).
func ReadDir(dir string) (*ROM, error) {
	fl := files{texts: map[string]string{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.Type().IsRegular() && (isScript(e.Name()) || e.Name() == "misc.txt") {
			b, err := readSmall(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, err
			}
			fl.texts[e.Name()] = b
		}
	}
	imgs, err := os.ReadDir(filepath.Join(dir, "images"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range imgs {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		name := "images/" + e.Name()
		fl.images = append(fl.images, Image{Name: name, Size: info.Size(), Offset: -1})
		if e.Name() == "anti_version.txt" {
			b, err := readSmall(filepath.Join(dir, "images", e.Name()))
			if err != nil {
				return nil, err
			}
			fl.texts[name] = b
		}
	}
	return assemble(fl)
}

func readSmall(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxText+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxText {
		return "", invalid("%s is larger than %d bytes", p, maxText)
	}
	return string(b), nil
}

// Probe reports whether r looks like a Xiaomi fastboot ROM archive, reading at most a few tar headers
// (and at most limit decompressed bytes): an images/*.img entry or a flash_all script decides.
func Probe(r io.Reader, limit int64) bool {
	s, _, err := tarStream(r)
	if err != nil {
		return false
	}
	tr := tar.NewReader(io.LimitReader(s, limit))
	for n := 0; n < 64; n++ {
		h, err := tr.Next()
		if err != nil {
			return false
		}
		name := path.Clean("/" + h.Name)
		if isScript(path.Base(name)) || inImages(name) && strings.HasSuffix(strings.ToLower(name), ".img") {
			return true
		}
	}
	return false
}

// Info is the JSON-able summary for inspect.
type Info struct {
	Products      []string `json:"products"`
	AntiVersion   int      `json:"anti_version"`
	DefaultScript string   `json:"default_script"`
	Steps         []Step   `json:"steps"`
	Relocks       bool     `json:"relocks"`
	Scripts       []string `json:"scripts"`
	Images        []Image  `json:"images"`
	Warnings      []string `json:"warnings,omitempty"`
	// FlashScript is what `romforge flash` plans without --wipe or --script (user data kept), with
	// FlashNotes saying which steps it drops.
	FlashScript string   `json:"flash_script,omitempty"`
	FlashNotes  []string `json:"flash_notes,omitempty"`
}

// Info summarises the ROM.
func (r *ROM) Info() Info {
	in := Info{Products: r.Products, AntiVersion: r.AntiVersion, DefaultScript: r.DefaultScript, Steps: r.Steps,
		Relocks: r.Relocks, Scripts: sortedKeys(r.Scripts), Images: r.Images, Warnings: r.Warnings}
	if c, err := r.Choose("", false); err == nil {
		in.FlashScript, in.FlashNotes = c.Script, c.Notes
	}
	return in
}
