package edify

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// PermOp is one set_perm / set_perm_recursive / set_metadata / set_metadata_recursive call, for one path.
// Nil fields are left as they were.
type PermOp struct {
	// Path on the device, cleaned, e.g. "/system/bin".
	Path      string  `json:"path"`
	Recursive bool    `json:"recursive,omitempty"`
	UID       *uint32 `json:"uid,omitempty"`
	GID       *uint32 `json:"gid,omitempty"`
	// Mode applies to the path itself (non-recursive calls).
	Mode *uint32 `json:"mode,omitempty"`
	// DirMode and FileMode apply below a recursive call's path (the path itself included).
	DirMode      *uint32 `json:"dmode,omitempty"`
	FileMode     *uint32 `json:"fmode,omitempty"`
	Capabilities *uint64 `json:"capabilities,omitempty"`
	SELabel      *string `json:"selabel,omitempty"`
	Line         int     `json:"line"`
}

// Symlink is a symlink(target, path...) call, for one path.
type Symlink struct {
	Target string `json:"target"`
	Path   string `json:"path"`
	Line   int    `json:"line"`
}

// Extract is a package_extract_dir or package_extract_file call.
type Extract struct {
	Source string `json:"source"`
	Dest   string `json:"dest"`
	Dir    bool   `json:"dir"`
	Line   int    `json:"line"`
}

// Script is what an updater-script says about the files it installs.
type Script struct {
	// Perms in script order; later operations override earlier ones.
	Perms    []PermOp  `json:"perms"`
	Symlinks []Symlink `json:"symlinks"`
	Extracts []Extract `json:"extracts"`
	// Devices the script's asserts accept (getprop("ro.product.device") == "armani" and similar).
	Devices []string `json:"devices"`
	// Warnings list calls that could not be interpreted statically.
	Warnings []string `json:"warnings,omitempty"`
	// Errors list calls whose arguments are invalid (bad ids or modes, too few arguments, paths that
	// climb out with ".."); recovery would misapply or reject them, so an image built from the script
	// would be wrong. Each call is also left out of Perms, Symlinks and Extracts.
	Errors []string `json:"errors,omitempty"`
}

// deviceProps are the properties device asserts compare.
var deviceProps = map[string]bool{
	"ro.product.device": true, "ro.build.product": true, "ro.product.vendor.device": true,
	"ro.product.system.device": true, "ro.product.odm.device": true, "ro.product.board": true,
}

// ParseScript parses an updater-script and extracts its permissions, symlinks, extractions and device
// asserts.
func ParseScript(src string) (*Script, error) {
	n, err := Parse(src)
	if err != nil {
		return nil, err
	}
	return Extracted(n), nil
}

// Extracted interprets a parsed script.
func Extracted(root *Node) *Script {
	s := &Script{Perms: []PermOp{}, Symlinks: []Symlink{}, Extracts: []Extract{}, Devices: []string{}}
	Walk(root, func(n *Node) {
		switch n.Kind {
		case Eq:
			s.deviceAssert(n)
		case Call:
			s.call(n)
		}
	})
	return s
}

func (s *Script) warnf(line int, format string, args ...any) {
	if len(s.Warnings) < 100 {
		s.Warnings = append(s.Warnings, fmt.Sprintf("line %d: ", line)+fmt.Sprintf(format, args...))
	}
}

func (s *Script) errorf(line int, format string, args ...any) {
	if len(s.Errors) < 100 {
		s.Errors = append(s.Errors, fmt.Sprintf("line %d: ", line)+fmt.Sprintf(format, args...))
	}
}

// climbs reports whether the script path p has a ".." element, NUL or is empty: cleaning it would
// silently move it elsewhere (out of /system).
func climbs(p string) bool {
	if p == "" || strings.ContainsRune(p, 0) {
		return true
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return true
		}
	}
	return false
}

// checkPaths reports the first path argument that climbs, as an error of call name.
func (s *Script) checkPaths(line int, name string, paths []string) bool {
	for _, p := range paths {
		if climbs(p) {
			s.errorf(line, "%s: path %.100q is empty or climbs out with \"..\"", name, p)
			return false
		}
	}
	return true
}

func (s *Script) deviceAssert(n *Node) {
	a, b := n.Args[0], n.Args[1]
	if b.Kind == Call {
		a, b = b, a
	}
	if a.Kind != Call || a.Value != "getprop" || len(a.Args) != 1 {
		return
	}
	prop, ok1 := Static(a.Args[0])
	val, ok2 := Static(b)
	if ok1 && ok2 && deviceProps[prop] && !slices.Contains(s.Devices, val) {
		s.Devices = append(s.Devices, val)
	}
}

// statics evaluates every argument, or reports the call as not interpretable.
func (s *Script) statics(n *Node) ([]string, bool) {
	out := make([]string, len(n.Args))
	for i, a := range n.Args {
		v, ok := Static(a)
		if !ok {
			s.warnf(n.Line, "%s: argument %d is computed at run time; call ignored", n.Value, i+1)
			return nil, false
		}
		out[i] = v
	}
	return out, true
}

func devPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return path.Clean(p)
}

func parseU32(s string, base int) (*uint32, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), base, 32)
	if err != nil {
		return nil, err
	}
	u := uint32(v)
	return &u, nil
}

func parseMode(s string) (*uint32, error) {
	m, err := parseU32(s, 8)
	if err == nil && *m > 0o7777 {
		return nil, fmt.Errorf("mode %s out of range", s)
	}
	return m, err
}

func (s *Script) call(n *Node) {
	switch n.Value {
	case "set_perm", "set_perm_recursive":
		rec := n.Value == "set_perm_recursive"
		fixed := 3
		if rec {
			fixed = 4
		}
		args, ok := s.statics(n)
		if !ok {
			return
		}
		if len(args) <= fixed {
			s.errorf(n.Line, "%s needs at least %d arguments, has %d", n.Value, fixed+1, len(args))
			return
		}
		op := PermOp{Recursive: rec, Line: n.Line}
		var err error
		if op.UID, err = parseU32(args[0], 10); err != nil {
			s.errorf(n.Line, "%s: uid %.40q is not a number", n.Value, args[0])
			return
		}
		if op.GID, err = parseU32(args[1], 10); err != nil {
			s.errorf(n.Line, "%s: gid %.40q is not a number", n.Value, args[1])
			return
		}
		if rec {
			op.DirMode, err = parseMode(args[2])
			if err == nil {
				op.FileMode, err = parseMode(args[3])
			}
		} else {
			op.Mode, err = parseMode(args[2])
		}
		if err != nil {
			s.errorf(n.Line, "%s: mode: %v", n.Value, err)
			return
		}
		if !s.checkPaths(n.Line, n.Value, args[fixed:]) {
			return
		}
		for _, p := range args[fixed:] {
			o := op
			o.Path = devPath(p)
			s.Perms = append(s.Perms, o)
		}
	case "set_metadata", "set_metadata_recursive":
		args, ok := s.statics(n)
		if !ok {
			return
		}
		if len(args) < 3 || len(args)%2 != 1 {
			s.errorf(n.Line, "%s needs a path and key/value pairs", n.Value)
			return
		}
		if !s.checkPaths(n.Line, n.Value, args[:1]) {
			return
		}
		op := PermOp{Path: devPath(args[0]), Recursive: n.Value == "set_metadata_recursive", Line: n.Line}
		for i := 1; i < len(args); i += 2 {
			k, v := args[i], args[i+1]
			var err error
			switch k {
			case "uid":
				op.UID, err = parseU32(v, 10)
			case "gid":
				op.GID, err = parseU32(v, 10)
			case "mode":
				op.Mode, err = parseMode(v)
			case "dmode":
				op.DirMode, err = parseMode(v)
			case "fmode":
				op.FileMode, err = parseMode(v)
			case "capabilities":
				var c uint64
				c, err = strconv.ParseUint(v, 0, 64)
				op.Capabilities = &c
			case "selabel":
				l := v
				op.SELabel = &l
			default:
				s.warnf(n.Line, "%s: unknown key %q ignored", n.Value, k)
			}
			if err != nil {
				s.errorf(n.Line, "%s: %s %.40q is invalid", n.Value, k, v)
				return
			}
		}
		if !op.Recursive && (op.DirMode != nil || op.FileMode != nil) {
			s.warnf(n.Line, "set_metadata: dmode/fmode only apply to set_metadata_recursive")
		}
		if op.Recursive && op.Mode != nil {
			s.warnf(n.Line, "set_metadata_recursive: mode ignored (use dmode/fmode)")
			op.Mode = nil
		}
		s.Perms = append(s.Perms, op)
	case "symlink":
		args, ok := s.statics(n)
		if !ok {
			return
		}
		if len(args) < 2 {
			s.errorf(n.Line, "symlink needs a target and at least one path")
			return
		}
		if !s.checkPaths(n.Line, n.Value, args[1:]) {
			return
		}
		for _, p := range args[1:] {
			s.Symlinks = append(s.Symlinks, Symlink{Target: args[0], Path: devPath(p), Line: n.Line})
		}
	case "package_extract_dir", "package_extract_file":
		args, ok := s.statics(n)
		if !ok || len(args) < 1 {
			return
		}
		// The source names zip entries: relative, without "..". The destination must not climb either.
		src := strings.TrimSuffix(args[0], "/")
		if climbs(src) || strings.HasPrefix(src, "/") {
			s.errorf(n.Line, "%s: source %.100q is not a path inside the package", n.Value, args[0])
			return
		}
		if len(args) > 1 && !s.checkPaths(n.Line, n.Value, args[1:2]) {
			return
		}
		e := Extract{Source: args[0], Dir: n.Value == "package_extract_dir", Line: n.Line}
		if len(args) > 1 {
			e.Dest = devPath(args[1])
		}
		s.Extracts = append(s.Extracts, e)
	}
}

// Attrs is the resolved metadata of one path.
type Attrs struct {
	UID, GID     uint32
	Mode         uint32 // permission bits (07777)
	Capabilities uint64
	SELabel      string
}

// Resolve applies every permission operation, in order, to the device path p (a directory when dir),
// starting from def.
func (s *Script) Resolve(p string, dir bool, def Attrs) Attrs {
	p = devPath(p)
	a := def
	for _, op := range s.Perms {
		if !(op.Path == p || op.Recursive && (op.Path == "/" || strings.HasPrefix(p, op.Path+"/"))) {
			continue
		}
		if op.UID != nil {
			a.UID = *op.UID
		}
		if op.GID != nil {
			a.GID = *op.GID
		}
		if op.Mode != nil {
			a.Mode = *op.Mode
		}
		if dir && op.DirMode != nil {
			a.Mode = *op.DirMode
		}
		if !dir && op.FileMode != nil {
			a.Mode = *op.FileMode
		}
		if op.Capabilities != nil {
			a.Capabilities = *op.Capabilities
		}
		if op.SELabel != nil {
			a.SELabel = *op.SELabel
		}
	}
	return a
}
