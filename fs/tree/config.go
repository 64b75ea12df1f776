package tree

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// FSConfigEntry is one line of an AOSP fs_config text file, as kitchens and `fs_config` print it:
//
//	system/bin/netd 0 2000 0750 capabilities=0x3000
type FSConfigEntry struct {
	Path         string // without leading slash, e.g. "system/bin/netd"
	UID, GID     uint32
	Mode         uint32 // permission bits incl. setuid/setgid/sticky (07777)
	Capabilities uint64
	Label        string // optional selabel=… extension
}

// FSConfig maps paths to owners, modes and capabilities.
type FSConfig map[string]FSConfigEntry

// ParseFSConfig reads an fs_config text file. Errors name the line.
func ParseFSConfig(r io.Reader) (FSConfig, error) {
	out := FSConfig{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			return nil, fmt.Errorf("fs_config line %d: want \"path uid gid mode [capabilities=0x…]\", got %q", ln, line)
		}
		uid, err1 := strconv.ParseUint(f[1], 10, 32)
		gid, err2 := strconv.ParseUint(f[2], 10, 32)
		mode, err3 := strconv.ParseUint(f[3], 8, 32)
		if err1 != nil || err2 != nil || err3 != nil || mode > 0o7777 {
			return nil, fmt.Errorf("fs_config line %d: bad uid, gid or octal mode in %q", ln, line)
		}
		e := FSConfigEntry{Path: strings.Trim(f[0], "/"), UID: uint32(uid), GID: uint32(gid), Mode: uint32(mode)}
		for _, opt := range f[4:] {
			k, v, _ := strings.Cut(opt, "=")
			switch k {
			case "capabilities":
				c, err := strconv.ParseUint(v, 0, 64)
				if err != nil {
					return nil, fmt.Errorf("fs_config line %d: bad capabilities %q", ln, v)
				}
				e.Capabilities = c
			case "selabel":
				e.Label = v
			}
		}
		out[e.Path] = e
	}
	return out, sc.Err()
}

// WriteFSConfig writes t's owners, modes and capabilities in fs_config format, every path prefixed with
// prefix (e.g. "system"; the root itself is written as prefix, or "/" when prefix is empty), sorted.
func WriteFSConfig(w io.Writer, t Tree, prefix string) error {
	bw := bufio.NewWriter(w)
	err := Walk(t, func(name string, m Meta) error {
		p := joinPrefix(prefix, name)
		line := fmt.Sprintf("%s %d %d %04o", p, m.UID, m.GID, m.UnixMode()&0o7777)
		if c := m.Capabilities(); c != 0 {
			line += fmt.Sprintf(" capabilities=0x%x", c)
		}
		_, err := fmt.Fprintln(bw, line)
		return err
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

func joinPrefix(prefix, name string) string {
	prefix = strings.Trim(prefix, "/")
	switch {
	case name == "." && prefix == "":
		return "/"
	case name == ".":
		return prefix
	case prefix == "":
		return name
	}
	return prefix + "/" + name
}

// FileContexts is a parsed SELinux file_contexts file.
type FileContexts struct {
	specs []fcSpec
}

type fcSpec struct {
	re     *regexp.Regexp
	typ    string // "", "--", "-d", "-l", …
	label  string
	exact  bool // no regex metacharacters: wins over patterns, as libselinux orders them
	lineNo int
}

// ParseFileContexts reads a file_contexts file ("regex [type] label" per line).
func ParseFileContexts(r io.Reader) (*FileContexts, error) {
	fc := &FileContexts{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		var s fcSpec
		switch len(f) {
		case 2:
			s = fcSpec{typ: "", label: f[1]}
		case 3:
			s = fcSpec{typ: f[1], label: f[2]}
		default:
			return nil, fmt.Errorf("file_contexts line %d: want \"regex [type] label\", got %q", ln, line)
		}
		re, err := regexp.Compile("^(" + f[0] + ")$")
		if err != nil {
			return nil, fmt.Errorf("file_contexts line %d: %v", ln, err)
		}
		s.re, s.lineNo = re, ln
		s.exact = !strings.ContainsAny(f[0], `.^$?*+|[({\`)
		fc.specs = append(fc.specs, s)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// libselinux: later specs win, and specs without metacharacters win over those with.
	sort.SliceStable(fc.specs, func(i, j int) bool { return !fc.specs[i].exact && fc.specs[j].exact })
	return fc, nil
}

// Lookup returns the label for an absolute path of the given Go mode type, or "" when nothing matches.
func (fc *FileContexts) Lookup(abs string, m Meta) string {
	for i := len(fc.specs) - 1; i >= 0; i-- {
		s := fc.specs[i]
		if !typeMatches(s.typ, m) {
			continue
		}
		if s.re.MatchString(abs) {
			if s.label == "<<none>>" {
				return ""
			}
			return s.label
		}
	}
	return ""
}

func typeMatches(typ string, m Meta) bool {
	switch typ {
	case "":
		return true
	case "--":
		return m.Mode.IsRegular()
	case "-d":
		return m.Mode.IsDir()
	case "-l":
		return m.Mode.Type() == modeSymlink
	case "-c":
		return m.Mode.Type() == modeCharDev
	case "-b":
		return m.Mode.Type() == modeDevice
	case "-p":
		return m.Mode.Type() == modePipe
	case "-s":
		return m.Mode.Type() == modeSocket
	}
	return false
}

// WriteFileContexts writes one exact line per entry of t with its label (entries without a label are
// skipped), paths prefixed with mountPoint (e.g. "/system"), regex-escaped.
func WriteFileContexts(w io.Writer, t Tree, mountPoint string) error {
	bw := bufio.NewWriter(w)
	err := Walk(t, func(name string, m Meta) error {
		label := m.SELinux()
		if label == "" {
			return nil
		}
		abs := path.Join("/", mountPoint, name)
		_, err := fmt.Fprintf(bw, "%s %s\n", regexp.QuoteMeta(abs), label)
		return err
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}
