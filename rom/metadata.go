package rom

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/romforge/romforge/internal/failure"
)

// MetadataPath is where OTA zips keep their metadata.
const MetadataPath = "META-INF/com/android/metadata"

// maxTextFile bounds the small text files read from ROMs.
const maxTextFile = 1 << 20

// OTAMetadata is META-INF/com/android/metadata: key=value lines.
type OTAMetadata struct {
	// Values holds every key as written.
	Values map[string]string `json:"values"`
	// OTAType is "AB", "BLOCK" or "BRICK" (ota-type).
	OTAType string `json:"ota_type,omitempty"`
	// PreDevice lists the devices the package installs on (pre-device, '|' or ',' separated).
	PreDevice     []string `json:"pre_device,omitempty"`
	PreBuild      string   `json:"pre_build,omitempty"`
	PostBuild     string   `json:"post_build,omitempty"`
	PostTimestamp int64    `json:"post_timestamp,omitempty"`
	PostSDKLevel  string   `json:"post_sdk_level,omitempty"`
	PostSPL       string   `json:"post_security_patch_level,omitempty"`
	// Incremental says the package is a delta from PreBuild.
	Incremental bool `json:"incremental"`
}

// ParseOTAMetadata reads key=value lines (at most 1 MiB). Unknown keys are kept in Values.
func ParseOTAMetadata(r io.Reader) (*OTAMetadata, error) {
	m := &OTAMetadata{Values: map[string]string{}}
	sc := bufio.NewScanner(io.LimitReader(r, maxTextFile+1))
	sc.Buffer(make([]byte, 4096), maxTextFile+1)
	n, line := 0, 0
	for sc.Scan() {
		line++
		n += len(sc.Bytes()) + 1
		if n > maxTextFile {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: OTA metadata larger than %d bytes", maxTextFile))
		}
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: OTA metadata line %d is not key=value: %q", line, truncate(s)))
		}
		m.Values[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: OTA metadata: %w", err))
	}
	v := m.Values
	m.OTAType, m.PreBuild, m.PostBuild = v["ota-type"], v["pre-build"], v["post-build"]
	m.PostSDKLevel, m.PostSPL = v["post-sdk-level"], v["post-security-patch-level"]
	m.Incremental = v["pre-build"] != "" || v["pre-build-incremental"] != ""
	if d := v["pre-device"]; d != "" {
		for _, x := range strings.FieldsFunc(d, func(r rune) bool { return r == '|' || r == ',' }) {
			if x = strings.TrimSpace(x); x != "" {
				m.PreDevice = append(m.PreDevice, x)
			}
		}
	}
	if ts := v["post-timestamp"]; ts != "" {
		t, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: OTA metadata post-timestamp %q is not a number", truncate(ts)))
		}
		m.PostTimestamp = t
	}
	return m, nil
}

// Keys returns the metadata keys in sorted order.
func (m *OTAMetadata) Keys() []string {
	keys := make([]string, 0, len(m.Values))
	for k := range m.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// Requirement is one line of a fastboot update zip's android-info.txt:
// "require board=armani", "require version-bootloader=a|b", "require-for-product:P version-baseband=x",
// "reject NAME=V".
type Requirement struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
	// Product limits the requirement to one product (require-for-product:PRODUCT).
	Product string `json:"product,omitempty"`
	// Reject inverts it: the device must not match.
	Reject bool `json:"reject,omitempty"`
}

// AndroidInfo is a parsed android-info.txt.
type AndroidInfo struct {
	Requirements []Requirement `json:"requirements"`
	// Boards are the values of "require board=" / "require product=".
	Boards []string `json:"boards"`
}

// ParseAndroidInfo parses android-info.txt (at most 1 MiB).
func ParseAndroidInfo(r io.Reader) (*AndroidInfo, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxTextFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxTextFile {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: android-info.txt larger than %d bytes", maxTextFile))
	}
	ai := &AndroidInfo{Requirements: []Requirement{}, Boards: []string{}}
	for i, ln := range strings.Split(string(data), "\n") {
		s := strings.TrimSpace(ln)
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		verb, rest, _ := strings.Cut(s, " ")
		req := Requirement{}
		switch {
		case verb == "require":
		case verb == "reject":
			req.Reject = true
		case strings.HasPrefix(verb, "require-for-product:"):
			req.Product = strings.TrimPrefix(verb, "require-for-product:")
		default:
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: android-info.txt line %d: unknown directive %q", i+1, truncate(verb)))
		}
		name, vals, ok := strings.Cut(strings.TrimSpace(rest), "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("rom: android-info.txt line %d is not NAME=VALUE: %q", i+1, truncate(s)))
		}
		req.Name = name
		for _, v := range strings.Split(vals, "|") {
			if v = strings.TrimSpace(v); v != "" {
				req.Values = append(req.Values, v)
			}
		}
		if (name == "board" || name == "product") && !req.Reject && req.Product == "" {
			ai.Boards = append(ai.Boards, req.Values...)
		}
		ai.Requirements = append(ai.Requirements, req)
	}
	return ai, nil
}
