package xiaomi

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/romforge/romforge/internal/failure"
)

// Step operations (the same names as the flash package's plan steps).
const (
	OpFlash            = "flash"
	OpErase            = "erase"
	OpFormat           = "format"
	OpSetActive        = "set_active"
	OpReboot           = "reboot"
	OpRebootBootloader = "reboot-bootloader"
	OpRebootFastboot   = "reboot-fastboot"
	// OpLock relocks the bootloader (oem lock / flashing lock): with modified images it bricks the phone.
	OpLock = "lock"
	// OpWipe is fastboot's -w: format userdata, and cache and metadata where the phone has them.
	OpWipe = "wipe"
)

// Step is one fastboot command of a flash script.
type Step struct {
	Op        string `json:"op"`
	Partition string `json:"partition,omitempty"`
	// Image is the file flashed, relative to the ROM root (e.g. "images/boot.img").
	Image string `json:"image,omitempty"`
	// Slot is "a", "b" or "all" (from --slot, a _a/_b suffix, or Xiaomi's _ab suffix) for flash and
	// set_active.
	Slot string `json:"slot,omitempty"`
	Line int    `json:"line"`
}

// Script is a parsed flash_all*.sh or .bat.
type Script struct {
	Name string `json:"name"`
	// Products accepted by the script's `getvar product` check.
	Products []string `json:"products"`
	// AntiVersion is CURRENT_ANTI_VER, -1 when the script sets none.
	AntiVersion int `json:"anti_version"`
	// AntiCheck says the script compares the device's `getvar anti` with it.
	AntiCheck bool   `json:"anti_check"`
	Steps     []Step `json:"steps"`
	// Relocks says a step relocks the bootloader.
	Relocks  bool     `json:"relocks"`
	Warnings []string `json:"warnings,omitempty"`
}

const maxScript = 1 << 20

var (
	antiAssign = regexp.MustCompile(`(?i)^\s*(?:set\s+)?"?CURRENT_ANTI_VER\s*=\s*"?(\d+)"?`)
	productRe  = regexp.MustCompile(`product:\s*(?:\\s)?\*?\s*(.*)$`)
)

func (s *Script) warnf(line int, format string, args ...any) {
	if len(s.Warnings) < 100 {
		s.Warnings = append(s.Warnings, fmt.Sprintf("line %d: ", line)+fmt.Sprintf(format, args...))
	}
}

// ParseShell parses a flash_all*.sh script.
func ParseShell(name, src string) (*Script, error) { return parse(name, src, false) }

// ParseBatch parses a flash_all*.bat script.
func ParseBatch(name, src string) (*Script, error) { return parse(name, src, true) }

// ParseScript chooses the dialect by the name's extension.
func ParseScript(name, src string) (*Script, error) {
	return parse(name, src, strings.HasSuffix(strings.ToLower(name), ".bat"))
}

func parse(name, src string, batch bool) (*Script, error) {
	if len(src) > maxScript {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("xiaomi: %s is larger than %d bytes", name, maxScript))
	}
	s := &Script{Name: name, AntiVersion: -1, Products: []string{}, Steps: []Step{}}
	lines := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
	for i, ln := range lines {
		no := i + 1
		t := strings.TrimSpace(ln)
		if batch {
			t = strings.TrimLeft(t, "@")
			if low := strings.ToLower(t); strings.HasPrefix(low, "rem ") || low == "rem" || strings.HasPrefix(t, "::") {
				continue
			}
		} else if strings.HasPrefix(t, "#") {
			continue
		}
		if m := antiAssign.FindStringSubmatch(t); m != nil {
			v, err := strconv.Atoi(m[1])
			if err != nil || v > 1<<20 {
				s.warnf(no, "CURRENT_ANTI_VER %q is not a sane number", m[1])
			} else {
				s.AntiVersion = v
			}
			continue
		}
		if strings.Contains(t, "getvar anti") {
			s.AntiCheck = true
		}
		if strings.Contains(t, "getvar product") {
			s.products(no, t)
			continue
		}
		for _, cmd := range splitCommands(t, batch) {
			words := splitWords(cmd, batch)
			for len(words) > 0 && slices.Contains([]string{"then", "else", "do", "{", "(", "if", "elif"}, words[0]) {
				words = words[1:]
			}
			if len(words) == 0 || !isFastboot(words[0]) {
				continue
			}
			s.fastboot(no, words[1:])
		}
	}
	return s, nil
}

func isFastboot(w string) bool {
	w = strings.Trim(strings.ToLower(strings.ReplaceAll(w, `\`, "/")), `"'`)
	w = strings.TrimSuffix(w, ".exe")
	return w == "fastboot" || strings.HasSuffix(w, "/fastboot") || w == "$fastboot" || w == "${fastboot}" || w == "%fastboot%"
}

// products extracts the names a `getvar product | grep "^product: *NAME"` check accepts, including
// alternations such as "^product: *\(a\|b\)$" or -E "(a|b)".
func (s *Script) products(line int, t string) {
	m := productRe.FindStringSubmatch(t)
	if m == nil {
		s.warnf(line, "getvar product check without a product pattern")
		return
	}
	pat := m[1]
	if i := strings.IndexAny(pat, "\"'"); i >= 0 {
		pat = pat[:i]
	} else if i := strings.IndexAny(pat, " \t"); i >= 0 {
		pat = pat[:i]
	}
	r := strings.NewReplacer(`\(`, "", `\)`, "", `\|`, "|", "(", "", ")", "", "$", "", "^", "", `\`, "")
	pat = r.Replace(pat)
	for _, p := range strings.Split(pat, "|") {
		p = strings.TrimSpace(p)
		if p != "" && !slices.Contains(s.Products, p) && validName(p) {
			s.Products = append(s.Products, p)
		}
	}
}

func validName(p string) bool {
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// splitCommands splits a line at ; | || && (and & in batch files) outside quotes and backticks.
func splitCommands(t string, batch bool) []string {
	var out []string
	var q byte
	start := 0
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case q != 0:
			if c == q {
				q = 0
			}
		case c == '"' || c == '\'' || c == '`':
			q = c
		case c == ';' && !batch, c == '|', c == '&':
			out = append(out, t[start:i])
			if i+1 < len(t) && (t[i+1] == '|' || t[i+1] == '&') {
				i++
			}
			start = i + 1
		case c == '#' && !batch && (i == 0 || t[i-1] == ' ' || t[i-1] == '\t'):
			return append(out, t[start:i])
		}
	}
	return append(out, t[start:])
}

// splitWords splits a command into words, keeping quoted and backquoted runs inside a word and
// dropping quote characters.
func splitWords(cmd string, batch bool) []string {
	var words []string
	var b strings.Builder
	var q byte
	in := false
	flush := func() {
		if in {
			words = append(words, b.String())
		}
		b.Reset()
		in = false
	}
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		switch {
		case q != 0:
			if c == q {
				q = 0
				if c == '`' {
					b.WriteByte(c)
				}
			} else {
				b.WriteByte(c)
			}
		case c == '"' || c == '\'' || (c == '`' && !batch):
			q = c
			in = true
			if c == '`' {
				b.WriteByte(c)
			}
		case c == ' ' || c == '\t':
			flush()
		default:
			b.WriteByte(c)
			in = true
		}
	}
	flush()
	return words
}

// imageRef turns a script's file argument (`dirname $0`/images/x.img, %~dp0images\x.img,
// "$DIR/images/x.img") into a path relative to the ROM root.
func imageRef(w string) string {
	w = strings.ReplaceAll(w, `\`, "/")
	if i := strings.LastIndex(w, "images/"); i >= 0 {
		return path.Clean(w[i:])
	}
	for _, p := range []string{"`dirname $0`/", "$(dirname $0)/", "%~dp0", "$DIR/", "${DIR}/", "./"} {
		w = strings.TrimPrefix(w, p)
	}
	return path.Clean(w)
}

func splitSlot(part string) (string, string) {
	for _, sfx := range []string{"_ab", "_a", "_b"} {
		if strings.HasSuffix(part, sfx) && len(part) > len(sfx) {
			slot := map[string]string{"_ab": "all", "_a": "a", "_b": "b"}[sfx]
			return strings.TrimSuffix(part, sfx), slot
		}
	}
	return part, ""
}

// fastboot interprets the words after "fastboot".
func (s *Script) fastboot(line int, w []string) {
	slot := ""
	wipe := false
	var args []string
	// -w wipes after the command (fastboot -w update …), or alone.
	defer func() {
		if wipe {
			s.Steps = append(s.Steps, Step{Op: OpWipe, Line: line})
		}
	}()
	for i := 0; i < len(w); i++ {
		a := w[i]
		if strings.HasPrefix(a, "2>") || strings.HasPrefix(a, ">") || a == "1>" {
			break // output redirection ends the arguments
		}
		if len(args) > 0 {
			args = append(args, a)
			continue
		}
		// Client options and serial variables before the command.
		switch {
		case a == "-s" || a == "-S":
			i++
		case strings.HasPrefix(a, "--slot="):
			slot = strings.TrimPrefix(a, "--slot=")
		case a == "--slot":
			if i+1 < len(w) {
				slot = w[i+1]
				i++
			}
		case a == "-w":
			wipe = true
		case a == "--set-active" || strings.HasPrefix(a, "--set-active="):
			args = append(args, "set_active")
			if v, ok := strings.CutPrefix(a, "--set-active="); ok {
				args = append(args, v)
			}
		case strings.HasPrefix(a, "-"), strings.HasPrefix(a, "$"), strings.HasPrefix(a, "%") && strings.HasSuffix(a, "%"), a == "%*":
		default:
			args = append(args, a)
		}
	}
	// Options may also follow the command (fastboot flash --slot=all boot boot.img).
	kept := args[:0:0]
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case strings.HasPrefix(a, "--slot="):
			slot = strings.TrimPrefix(a, "--slot=")
		case a == "--slot" && i+1 < len(args):
			slot = args[i+1]
			i++
		case a == "-w" && i > 0:
			wipe = true
		case strings.HasPrefix(a, "--") && i > 0:
		default:
			kept = append(kept, a)
		}
	}
	args = kept
	if len(args) == 0 {
		return
	}
	switch strings.ToLower(args[0]) {
	case "flash", "flash:raw":
		if len(args) < 3 {
			s.warnf(line, "flash without a partition and an image")
			return
		}
		part, sl := splitSlot(args[1])
		if slot == "" {
			slot = sl
		}
		s.Steps = append(s.Steps, Step{Op: OpFlash, Partition: part, Image: imageRef(args[2]), Slot: slot, Line: line})
	case "erase", "format", "format:ext4", "format:f2fs":
		if len(args) < 2 {
			s.warnf(line, "%s without a partition", args[0])
			return
		}
		op := OpErase
		if strings.HasPrefix(args[0], "format") {
			op = OpFormat
		}
		part, sl := splitSlot(args[1])
		if slot == "" {
			slot = sl
		}
		s.Steps = append(s.Steps, Step{Op: op, Partition: part, Slot: slot, Line: line})
	case "set_active":
		if len(args) > 1 {
			slot = args[1]
		}
		s.Steps = append(s.Steps, Step{Op: OpSetActive, Slot: slot, Line: line})
	case "reboot":
		op := OpReboot
		if len(args) > 1 {
			switch args[1] {
			case "bootloader":
				op = OpRebootBootloader
			case "fastboot":
				op = OpRebootFastboot
			}
		}
		s.Steps = append(s.Steps, Step{Op: op, Line: line})
	case "reboot-bootloader":
		s.Steps = append(s.Steps, Step{Op: OpRebootBootloader, Line: line})
	case "reboot-fastboot":
		s.Steps = append(s.Steps, Step{Op: OpRebootFastboot, Line: line})
	case "oem", "flashing":
		if len(args) > 1 && (args[1] == "lock" || args[1] == "lock_critical") {
			s.Steps = append(s.Steps, Step{Op: OpLock, Line: line})
			s.Relocks = true
		} else if len(args) > 1 && args[1] != "unlock" {
			s.warnf(line, "%s %s not planned", args[0], args[1])
		}
	case "getvar", "devices", "wait-for-device":
	default:
		s.warnf(line, "fastboot %s not planned", truncate(args[0]))
	}
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
