package fetch

import (
	"bufio"
	"regexp"
	"strings"
)

var (
	hexRE = regexp.MustCompile(`(?i)\b([0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{128})\b`)
	// "SHA256 (file.zip) = HEX" (BSD style)
	bsdRE = regexp.MustCompile(`(?i)^\s*(sha256|sha1|sha512|md5)\s*\(([^)]+)\)\s*=\s*([0-9a-f]+)\s*$`)
	// "sha256: HEX", "SHA1 HEX", "**MD5:** HEX", "sha256sum = HEX"
	otherFileRE = regexp.MustCompile(`(?i)[\w.-]+\.(zip|img|tgz|tar|gz|xz|bin|apk)\b`)
	labelRE     = regexp.MustCompile(`(?i)\b(sha-?256|sha-?1|sha-?512|md5)(?:sum)?\b[^0-9a-f]{0,12}?([0-9a-f]{32,128})\b`)
)

func algoForLen(n int) string {
	switch n {
	case 32:
		return "md5"
	case 40:
		return "sha1"
	case 64:
		return "sha256"
	case 128:
		return "sha512"
	}
	return ""
}

func normAlgo(a string) string {
	a = strings.ToLower(strings.ReplaceAll(a, "-", ""))
	return a
}

// ParseChecksums finds the checksum for file in text: a release body, or a sidecar file in sha256sum,
// md5sum or BSD format. Lines naming file win over unnamed ones; stronger algorithms win over weaker
// ones. It returns false when nothing usable is found.
func ParseChecksums(text, file string) (Checksum, bool) {
	type cand struct {
		c     Checksum
		named bool
	}
	var best *cand
	rank := map[string]int{"md5": 1, "sha1": 2, "sha256": 3, "sha512": 4}
	consider := func(algo, value string, named bool) {
		algo = normAlgo(algo)
		if algoForLen(len(value)) != algo {
			return
		}
		c := cand{Checksum{Algo: algo, Value: strings.ToLower(value)}, named}
		if best == nil || c.named && !best.named || c.named == best.named && rank[algo] > rank[best.c.Algo] {
			best = &c
		}
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		mentions := file != "" && strings.Contains(line, file)
		if file != "" && !mentions && otherFileRE.MatchString(line) {
			continue // names some other file
		}
		if m := bsdRE.FindStringSubmatch(line); m != nil {
			consider(m[1], m[3], strings.TrimSpace(m[2]) == file)
			continue
		}
		if m := labelRE.FindStringSubmatch(line); m != nil {
			consider(m[1], m[2], mentions)
			continue
		}
		// "HEX  file" or "HEX *file" (coreutils), or a bare HEX in a sidecar.
		f := strings.Fields(line)
		if len(f) >= 1 && hexRE.MatchString(f[0]) && len(hexRE.FindString(f[0])) == len(f[0]) {
			named := len(f) >= 2 && strings.TrimPrefix(f[1], "*") == file
			if len(f) >= 2 && !named && file != "" {
				continue // a line for another file
			}
			consider(algoForLen(len(f[0])), f[0], named)
		}
	}
	if best == nil {
		return Checksum{}, false
	}
	return best.c, true
}
