package audit

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
)

// naiveHits is the reference the matcher must agree with: every pattern tried at every position,
// compared ASCII-case-insensitively, with the domain boundary rules applied.
func naiveHits(pats []pattern, b []byte, from int) []hit {
	var out []hit
	for pi, p := range pats {
		t := strings.ToLower(p.text)
		for start := 0; start+len(t) <= len(b); start++ {
			end := start + len(t)
			if end <= from || !bytes.Equal(lowerBytes(b[start:end]), []byte(t)) {
				continue
			}
			if p.domain {
				if start > 0 && hostChar[b[start-1]] {
					continue
				}
				if end < len(b) && (hostChar[b[end]] || b[end] == '.' && end+1 < len(b) && hostChar[b[end+1]]) {
					continue
				}
			}
			out = append(out, hit{pat: pi, start: start, end: end})
		}
	}
	return out
}

// accept is acceptIn the plain way, widening each hit from scratch: the reference the scan's token
// cache is checked against.
func (m *matcher) accept(b []byte, h hit) (string, bool) {
	host := hostAround(b, h.start, h.end)
	if !m.pats[h.pat].domain && !looksLikeHost(host) {
		return "", false
	}
	return host, true
}

// hostAround widens [start,end) to the whole hostname-like token around it.
func hostAround(b []byte, start, end int) string {
	for start > 0 && (hostChar[b[start-1]] || b[start-1] == '.') {
		start--
	}
	for end < len(b) && (hostChar[b[end]] || b[end] == '.' && end+1 < len(b) && hostChar[b[end+1]]) {
		end++
	}
	return strings.ToLower(strings.Trim(string(b[start:end]), "."))
}

func lowerBytes(b []byte) []byte {
	o := make([]byte, len(b))
	for i, c := range b {
		o[i] = lower[c]
	}
	return o
}

// accepted is what stream keeps of hits: the hostname and where the hit ended (which decides the round
// it is reported in).
func accepted(m *matcher, b []byte, hits []hit) []string {
	set := map[string]bool{}
	for _, h := range hits {
		if host, ok := m.accept(b, h); ok {
			set[fmt.Sprintf("%s@%d", host, h.end)] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func fastHits(m *matcher, b []byte, from int) []hit {
	var hits []hit
	m.scan(b, from, func(h hit) { hits = append(hits, h) })
	return hits
}

// checkEquivalent compares the matcher with the naive reference on b: the same hostnames accepted at the
// same end offsets, and every hit the matcher reports is a real one.
func checkEquivalent(t *testing.T, pats []pattern, b []byte, from int) {
	t.Helper()
	ref := append([]pattern(nil), pats...)
	m := newMatcher(pats)
	fast := fastHits(m, b, from)
	want := naiveHits(ref, b, from)
	real := map[hit]bool{}
	for _, h := range want {
		real[h] = true
	}
	toks := newTokens(b)
	for _, h := range fast {
		if !real[h] {
			t.Fatalf("patterns %v, input %q, from %d: matcher reported %+v (%q), not a real hit", pats, b, from, h, b[h.start:h.end])
		}
		// The scan's token cache gives what widening each hit from scratch gives.
		h1, ok1 := m.accept(b, h)
		h2, ok2 := m.acceptIn(toks, h)
		if h1 != h2 || ok1 != ok2 {
			t.Fatalf("patterns %v, input %q, hit %+v: accept %q %v, acceptIn %q %v", pats, b, h, h1, ok1, h2, ok2)
		}
	}
	if a, w := accepted(m, b, fast), accepted(m, b, want); strings.Join(a, " ") != strings.Join(w, " ") {
		t.Fatalf("patterns %+v, input %q, from %d:\nmatcher   %q\nreference %q", pats, b, from, a, w)
	}
}

// randomInput draws bytes that make matches, near-matches and boundaries likely.
func randomInput(r *rand.Rand, pats []pattern, n int) []byte {
	var b []byte
	for len(b) < n {
		switch r.IntN(8) {
		case 0, 1:
			p := pats[r.IntN(len(pats))].text
			if r.IntN(3) == 0 && len(p) > 1 {
				p = p[r.IntN(len(p)):] // a tail: partial matches
			}
			if r.IntN(2) == 0 {
				p = strings.ToUpper(p)
			}
			b = append(b, p...)
		case 2:
			b = append(b, ".-_/ \x00:"[r.IntN(7)])
		case 3:
			b = append(b, "abcimoxz019"[r.IntN(11)])
		case 4:
			b = append(b, byte(r.IntN(256)))
		default:
			b = append(b, ".aim-xco"[r.IntN(8)])
		}
	}
	return b
}

func randomPatterns(r *rand.Rand) []pattern {
	n := 1 + r.IntN(6)
	pats := make([]pattern, n)
	for i := range pats {
		var s strings.Builder
		for range 1 + r.IntN(7) {
			s.WriteByte("aimxco.-"[r.IntN(8)])
		}
		if r.IntN(10) == 0 {
			s.WriteByte("_/Z\xff"[r.IntN(4)]) // a byte outside hostnames: the full-scan mode
		}
		t := s.String()
		pats[i] = pattern{text: t, domain: strings.Contains(t, ".") || r.IntN(4) == 0}
	}
	return pats
}

func TestMatcherMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	real := rules().patterns()
	for i := 0; i < 3000; i++ {
		pats := randomPatterns(r)
		if i%3 == 0 {
			pats = append(pats, real...)
		}
		b := randomInput(r, pats, r.IntN(200))
		checkEquivalent(t, pats, b, r.IntN(len(b)+1))
	}
}

func TestMatcherModesAndPruning(t *testing.T) {
	domain := func(s string) pattern { return pattern{text: s, domain: true} }
	family := func(s string) pattern { return pattern{text: s} }
	cases := []struct {
		pats   []pattern
		tokens bool
		keep   int
	}{
		{[]pattern{domain("API.xiaomi.com"), domain("xiaomi.com"), domain("xiaomi.com"), family("micloud")}, true, 2},
		{[]pattern{domain("localhost"), domain("a.b")}, false, 2}, // a dotless host needs every byte scanned
		{[]pattern{family("mi_cloud")}, false, 1},                 // '_' never occurs in hostnames
		{[]pattern{domain("")}, false, 1},
		{[]pattern{domain("a.xmpush.com"), family("xmpush.com")}, true, 2}, // only domain patterns cover others
	}
	for _, c := range cases {
		m := newMatcher(append([]pattern(nil), c.pats...))
		if m.tokens != c.tokens || len(redundant(m.pats)) != c.keep {
			t.Errorf("%v: tokens %v, kept %d; want %v, %d", c.pats, m.tokens, len(redundant(m.pats)), c.tokens, c.keep)
		}
	}
	// Pruned and unpruned sets find the same hostnames.
	b := []byte("x https://API.xiaomi.com/a b.api.xiaomi.com. api.xiaomi.community c-api.xiaomi.com")
	checkEquivalent(t, cases[0].pats, b, 0)
	checkEquivalent(t, []pattern{domain("")}, []byte("ab.cd e"), 0)
}

// FuzzMatcher compares the matcher with the naive reference on arbitrary inputs and pattern sets.
func FuzzMatcher(f *testing.F) {
	f.Add([]byte("https://api.xmpush.xiaomi.com/x"), "xiaomi.com\nmicloud", 0)
	f.Add([]byte("a.micloud.xiaomi.net notxiaomi.com MI.COM."), "mi.com\n*xmpush\nmicloud", 3)
	f.Add([]byte("mi_cloud.example.org localhost"), "mi_cloud\nlocalhost", 0)
	f.Fuzz(func(t *testing.T, b []byte, list string, from int) {
		var pats []pattern
		for i, s := range strings.Split(list, "\n") {
			if len(s) > 64 || len(pats) == 16 {
				return
			}
			// A leading '*' makes a substring family; dotted entries are domains, as in Rules.
			if strings.HasPrefix(s, "*") {
				pats = append(pats, pattern{text: s[1:]})
			} else {
				pats = append(pats, pattern{text: s, domain: strings.Contains(s, ".") || i%2 == 0})
			}
		}
		if len(b) > 4096 {
			return
		}
		if from < 0 || from > len(b) {
			from = 0
		}
		checkEquivalent(t, pats, b, from)
	})
}

// A hostile file: one long token made of a family's text repeated, a hit every 7 bytes. Widening each hit
// from scratch costs the token's length per hit; the scan's token cache costs the buffer once.
func BenchmarkAcceptLongToken(b *testing.B) {
	buf := []byte(strings.Repeat("micloud", 64<<10/7) + ".com")
	for _, mode := range []string{"tokens", "each-hit"} {
		b.Run(mode, func(b *testing.B) {
			m := newMatcher([]pattern{{text: "micloud"}, {text: "xiaomi.com", domain: true}})
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				toks := newTokens(buf)
				m.scan(buf, 0, func(h hit) {
					if mode == "tokens" {
						m.acceptIn(toks, h)
					} else {
						m.accept(buf, h)
					}
				})
			}
		})
	}
}
