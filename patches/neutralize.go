package patches

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strings"
)

// The operations below are what the audit-driven closure (patches/harden) does for one finding. Each
// records its changes in a StepReport like a set's steps and is idempotent.

// NewStep compiles one step spec (for steps made by a policy rather than read from YAML).
func NewStep(spec StepSpec, keepBootCritical bool) (Step, error) {
	return compile(spec, keepBootCritical)
}

// PathFor turns an audit finding's place (partition, path inside its tree) into a target path, or false
// when the file lies outside what the target addresses (the root of a system-as-root image).
func (t *Target) PathFor(part, treePath string) (string, bool) {
	if t.parts[part] == nil {
		return "", false
	}
	pre := t.prefix[part]
	if pre != "" {
		rest, ok := strings.CutPrefix(treePath, pre)
		if !ok {
			return "", false
		}
		treePath = rest
	}
	return part + "/" + treePath, true
}

// DevicePath is where a target path appears on the device (system/bin/x → /system/bin/x,
// boot-ramdisk/sbin/x → /sbin/x).
func DevicePath(p string) string {
	part, rel, _ := strings.Cut(p, "/")
	return path.Join(MountPoint(part), rel)
}

// RemoveFile removes a file (or directory) and records it.
func RemoveFile(ctx context.Context, t *Target, p, why string, r *StepReport) error {
	if !t.Exists(p) {
		return nil
	}
	return recordRemoval(ctx, t, r, p, why)
}

// DisableServicesRunning disables every init service, in every .rc file of the target, whose program is
// one of the device paths (a service whose binary is gone would only fail at boot; disabled, init never
// tries). It returns the services disabled.
func DisableServicesRunning(ctx context.Context, t *Target, programs []string, r *StepReport) ([]string, error) {
	want := map[string]bool{}
	for _, p := range programs {
		want[path.Clean(p)] = true
		if rest, ok := strings.CutPrefix(path.Clean(p), "/vendor/"); ok {
			want["/system/vendor/"+rest] = true
		}
	}
	files, err := t.Glob("*/**/*.rc")
	if err != nil {
		return nil, err
	}
	var disabled []string
	for _, f := range files {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		m, err := t.Meta(f)
		if err != nil || !m.Mode.IsRegular() {
			continue
		}
		old, m, err := t.ReadFile(f)
		if err != nil {
			return nil, err
		}
		names := map[string]bool{}
		for _, ln := range strings.Split(string(old), "\n") {
			fl := strings.Fields(ln)
			if len(fl) >= 3 && fl[0] == "service" && want[path.Clean(fl[2])] {
				names[fl[1]] = true
			}
		}
		if len(names) == 0 {
			continue
		}
		text, detail := EditRC(string(old), names, false)
		for n := range names {
			disabled = append(disabled, n)
		}
		if err := recordEdit(t, r, f, old, []byte(text), true, fixedMeta(m), detail); err != nil {
			return nil, err
		}
	}
	return disabled, nil
}

// DisableServices disables the named services wherever they are defined and comments out their
// explicit starts in every .rc file of the target.
func DisableServices(ctx context.Context, t *Target, names map[string]bool, r *StepReport) error {
	files, err := t.Glob("*/**/*.rc")
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
		text, detail := EditRC(string(old), names, false)
		if err := recordEdit(t, r, f, old, []byte(text), true, fixedMeta(m), detail); err != nil {
			return err
		}
	}
	return nil
}

// EditProp deletes a property from one prop file or, with set, gives it a safe value.
func EditProp(t *Target, file, key string, value *string, r *StepReport) error {
	old, m, err := t.ReadFile(file)
	if err != nil {
		return err
	}
	var out strings.Builder
	var detail []string
	for _, ln := range strings.SplitAfter(string(old), "\n") {
		k, _, isProp := strings.Cut(strings.TrimSpace(ln), "=")
		if !isProp || strings.HasPrefix(strings.TrimSpace(ln), "#") || strings.TrimSpace(k) != key {
			out.WriteString(ln)
			continue
		}
		if value == nil {
			detail = append(detail, "-"+key)
			continue
		}
		nl := key + "=" + *value
		if strings.TrimRight(ln, "\r\n") != nl {
			detail = append(detail, "~"+nl)
		}
		out.WriteString(nl + "\n")
	}
	return recordEdit(t, r, file, old, []byte(out.String()), true, fixedMeta(m), detail)
}

// NeutralHost returns a stand-in of exactly n bytes for a hostname that can never reach a server:
// a name under the reserved .invalid TLD (RFC 6761) when it fits, else a spelling of 0.0.0.0. Keeping
// the length keeps binary string tables and offsets valid.
func NeutralHost(n int) string {
	switch {
	case n >= 9:
		return strings.Repeat("x", n-8) + ".invalid"
	case n >= 7:
		return strings.Repeat("0", n-6) + ".0.0.0"
	default:
		return strings.Repeat("0", n)
	}
}

// ReplaceHost replaces every occurrence of a hostname (any letter case, as a whole hostname) in a file
// with NeutralHost of the same length.
func ReplaceHost(t *Target, file, host string, r *StepReport) (int, error) {
	old, m, err := t.ReadFile(file)
	if err != nil {
		return 0, err
	}
	new, n := replaceHostBytes(old, host)
	if n == 0 {
		return 0, nil
	}
	return n, recordEdit(t, r, file, old, new, true, fixedMeta(m), []string{fmt.Sprintf("%s → %s ×%d", host, NeutralHost(len(host)), n)})
}

func hostByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.'
}

func replaceHostBytes(b []byte, host string) ([]byte, int) {
	low := bytes.ToLower(b)
	h := []byte(strings.ToLower(host))
	repl := []byte(NeutralHost(len(h)))
	out := append([]byte(nil), b...)
	n := 0
	for i := 0; ; {
		j := bytes.Index(low[i:], h)
		if j < 0 {
			break
		}
		at := i + j
		end := at + len(h)
		// Whole hostname only: not the tail of a longer name (notapi.xiaomi.com), nor followed by
		// another label.
		if (at > 0 && hostByte(low[at-1]) && low[at-1] != '.') || (end < len(low) && hostByte(low[end]) && !(low[end] == '.' && (end+1 >= len(low) || !hostByte(low[end+1])))) {
			i = at + 1
			continue
		}
		copy(out[at:end], repl)
		n++
		i = end
	}
	return out, n
}

// AppPackage returns the package of the app directory a target path lies in (an APK's own directory:
// its oat/ and lib/ files belong to the package), or false when p is not inside one.
func (t *Target) AppPackage(p string) (string, bool) {
	parts := strings.Split(p, "/")
	for i := 1; i+2 < len(parts); i++ {
		switch parts[i] {
		case "app", "priv-app", "overlay", "data-app":
		default:
			continue
		}
		dir := strings.Join(parts[:i+2], "/")
		apks, err := t.Glob(dir + "/*.apk")
		if err != nil {
			return "", false
		}
		for _, a := range apks {
			if m, err := readManifest(t, a); err == nil {
				return m.Package, true
			}
		}
		return "", false
	}
	return "", false
}
