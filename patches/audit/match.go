package audit

import (
	"bytes"
	"sort"
	"strings"
)

// matcher finds many patterns at once in a byte stream (Aho-Corasick over ASCII-lowercased bytes),
// with hostname boundary rules for domain patterns.
//
// Speed comes from three things, none of which changes what is reported:
//   - the automaton is a flat DFA over byte classes (bytes no pattern uses share one class), with states
//     that have outputs numbered last, so the inner loop is one table load and one compare per byte;
//   - domain patterns made redundant by a shorter domain pattern at a label boundary (api.xiaomi.com by
//     xiaomi.com) are dropped: wherever the longer one matches, the shorter one matches with the same end
//     and yields the same hostname;
//   - when every pattern is made of hostname bytes and every domain pattern has a dot ("tokens" mode), only
//     hostname-like tokens that contain a dot are run through the DFA, found with bytes.IndexByte. A match
//     anywhere else could never be accepted (see accept), so skipping those bytes loses nothing.
type matcher struct {
	pats   []pattern // all patterns, lowercased, as given (hit.pat indexes this)
	maxLen int
	minLen int // of the patterns in the automaton: shorter tokens cannot hold a match

	class    [256]int32 // byte → input class; upper-case ASCII shares its lower-case class
	nclass   int
	delta    []int32   // (state*nclass + class) → next state*nclass
	firstOut int32     // states*nclass at or above this have outputs
	out      [][]int32 // state*nclass/nclass → pattern indices ending there
	tokens   bool
}

type pattern struct {
	text string
	// domain patterns must stand as a whole hostname label sequence: no hostname character right
	// before, and none after (a final dot is allowed).
	domain bool
}

var lower [256]byte

// hostChar marks bytes that can be part of a hostname label; tokenChar adds the dot.
var hostChar, tokenChar [256]bool

func init() {
	for i := range lower {
		lower[i] = byte(i)
		if i >= 'A' && i <= 'Z' {
			lower[i] = byte(i) + 32
		}
	}
	for c := 'a'; c <= 'z'; c++ {
		hostChar[c], hostChar[c-32] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		hostChar[c] = true
	}
	hostChar['-'] = true
	tokenChar = hostChar
	tokenChar['.'] = true
}

func newMatcher(pats []pattern) *matcher {
	m := &matcher{tokens: true}
	for i, p := range pats {
		p.text = strings.ToLower(p.text)
		pats[i] = p
		m.maxLen = max(m.maxLen, len(p.text))
		if p.text == "" || p.domain && !strings.Contains(p.text, ".") {
			m.tokens = false
		}
		for j := 0; j < len(p.text); j++ {
			if !tokenChar[p.text[j]] {
				m.tokens = false
			}
		}
	}
	m.pats = pats
	keep := redundant(pats)

	// Input classes: 0 for bytes in no pattern, then one per byte value used.
	m.minLen = m.maxLen
	for _, i := range keep {
		t := pats[i].text
		m.minLen = min(m.minLen, len(t))
		for j := 0; j < len(t); j++ {
			if m.class[t[j]] == 0 {
				m.nclass++
				m.class[t[j]] = int32(m.nclass)
			}
		}
	}
	m.nclass++
	for c := 'A'; c <= 'Z'; c++ {
		if m.class[c] == 0 {
			m.class[c] = m.class[c+32]
		}
	}
	// Trie, then breadth-first failure links folded into a full DFA (states numbered as built).
	nc := m.nclass
	next := make([]int32, nc)
	out := [][]int32{nil}
	for _, i := range keep {
		t := pats[i].text
		s := int32(0)
		for j := 0; j < len(t); j++ {
			c := m.class[t[j]]
			if next[s*int32(nc)+c] == 0 {
				next = append(next, make([]int32, nc)...)
				out = append(out, nil)
				next[s*int32(nc)+c] = int32(len(out) - 1)
			}
			s = next[s*int32(nc)+c]
		}
		out[s] = append(out[s], int32(i))
	}
	n := len(out)
	fail := make([]int32, n)
	order := make([]int32, 0, n) // breadth-first order
	for c := 0; c < nc; c++ {
		if s := next[c]; s != 0 {
			order = append(order, s)
		}
	}
	for q := 0; q < len(order); q++ {
		s := order[q]
		out[s] = append(out[s], out[fail[s]]...)
		for c := 0; c < nc; c++ {
			t := next[int(s)*nc+c]
			if t != 0 {
				fail[t] = next[int(fail[s])*nc+c]
				order = append(order, t)
			} else {
				next[int(s)*nc+c] = next[int(fail[s])*nc+c]
			}
		}
	}
	// Renumber: states without outputs first (root stays 0 unless it has outputs itself, which only an
	// empty pattern gives — then every state has outputs and the order does not matter).
	perm := make([]int32, n)
	var id int32
	for pass := 0; pass < 2; pass++ {
		for s := 0; s < n; s++ {
			if (len(out[s]) > 0) == (pass == 1) {
				perm[s] = id
				id++
			}
		}
		if pass == 0 {
			m.firstOut = id * int32(nc)
		}
	}
	m.delta = make([]int32, n*nc)
	m.out = make([][]int32, n)
	for s := 0; s < n; s++ {
		m.out[perm[s]] = out[s]
		for c := 0; c < nc; c++ {
			m.delta[int(perm[s])*nc+c] = perm[next[s*nc+c]] * int32(nc)
		}
	}
	return m
}

// redundant returns the indices of the patterns the automaton needs: a domain pattern is dropped when it
// repeats another or when a shorter domain pattern equals its tail after one of its dots.
func redundant(pats []pattern) []int {
	domains := map[string]int{}
	for i, p := range pats {
		if p.domain {
			if _, ok := domains[p.text]; !ok {
				domains[p.text] = i
			}
		}
	}
	var keep []int
	for i, p := range pats {
		if !p.domain {
			keep = append(keep, i)
			continue
		}
		if domains[p.text] != i {
			continue
		}
		// A shorter domain covers this one only when what it leaves out is hostname bytes: the hostname
		// accepted around its hit then reaches over them to the same one. (A pattern with other bytes,
		// "\x10..", is found and reported as itself.)
		covered := false
		for j := 0; j < len(p.text) && !covered; j++ {
			if c := p.text[j]; !hostChar[c] && c != '.' {
				break
			}
			// An empty suffix (after a final dot) covers nothing: the empty pattern reports a different
			// hostname than the one ending in the dot.
			if p.text[j] == '.' && j+1 < len(p.text) {
				_, covered = domains[p.text[j+1:]]
			}
		}
		if !covered {
			keep = append(keep, i)
		}
	}
	sort.Ints(keep)
	return keep
}

// hit is one match: pattern index and the byte range of the match in the scanned buffer.
type hit struct {
	pat        int
	start, end int
}

// scan reports matches in b whose end lies beyond from (earlier ones were reported with the previous
// chunk) and that pass the domain boundary rules. Boundary checks look at the bytes around the match
// inside b. In tokens mode, matches in tokens without a dot are not reported (accept would refuse them).
func (m *matcher) scan(b []byte, from int, fn func(hit)) {
	if !m.tokens {
		m.run(b, 0, len(b), from, fn)
		return
	}
	for i := 0; i < len(b); {
		d := bytes.IndexByte(b[i:], '.')
		if d < 0 {
			return
		}
		d += i
		start, end := d, d+1
		for start > i && tokenChar[b[start-1]] {
			start--
		}
		for end < len(b) && tokenChar[b[end]] {
			end++
		}
		if end > from && end-start >= m.minLen {
			m.run(b, start, end, from, fn)
		}
		i = end
	}
}

// run feeds b[start:end] through the DFA from the root state.
func (m *matcher) run(b []byte, start, end, from int, fn func(hit)) {
	s := int32(0)
	delta, class, firstOut := m.delta, &m.class, m.firstOut
	for i := start; i < end; i++ {
		s = delta[s+class[b[i]]]
		if s >= firstOut && i >= from {
			m.emit(b, i, s, fn)
		}
	}
}

func (m *matcher) emit(b []byte, i int, s int32, fn func(hit)) {
	for _, pi := range m.out[s/int32(m.nclass)] {
		p := m.pats[pi]
		start := i + 1 - len(p.text)
		if p.domain {
			if start > 0 && hostChar[b[start-1]] {
				continue
			}
			if j := i + 1; j < len(b) && (hostChar[b[j]] || b[j] == '.' && j+1 < len(b) && hostChar[b[j+1]]) {
				continue
			}
		}
		fn(hit{pat: int(pi), start: start, end: i + 1})
	}
}

// tokens finds the hostname-like token around each hit (the run of hostname bytes and inner dots) for
// the hits of one scan of one buffer, in the order scan reports them (ends never decrease), in time
// linear in the buffer: a hostile file of one long token made of a family's text repeated
// ("micloudmicloud…") has a hit every few bytes, and widening each hit from scratch, then copying the
// token, would cost the token's length per hit.
type tokens struct {
	b          []byte
	s0, l0     int // the last start asked and its left edge: b[l0:s0] widens left
	e0, r0     int // the last end asked and its right edge: b[e0:r0] widens right
	lastL      int
	lastR      int
	host       string
	looksValid bool
}

func newTokens(b []byte) *tokens { return &tokens{b: b, s0: -1, e0: -1, lastL: -1} }

func widensLeft(b []byte, i int) bool { return hostChar[b[i]] || b[i] == '.' }

func widensRight(b []byte, i int) bool {
	return hostChar[b[i]] || b[i] == '.' && i+1 < len(b) && hostChar[b[i+1]]
}

// around returns the lower-cased token around [start,end), without outer dots, and whether that token looks like a hostname.
func (t *tokens) around(start, end int) (string, bool) {
	b := t.b
	l := start
	switch {
	case t.s0 >= 0 && t.l0 <= start && start <= t.s0:
		l = t.l0
	case t.s0 >= 0 && start > t.s0:
		l = t.l0
		for i := t.s0; i < start; i++ {
			if !widensLeft(b, i) {
				l = i + 1
			}
		}
	default:
		for l > 0 && widensLeft(b, l-1) {
			l--
		}
	}
	t.s0, t.l0 = start, l
	r := end
	if t.e0 >= 0 && t.e0 <= end && end <= t.r0 {
		r = t.r0
	} else {
		for r < len(b) && widensRight(b, r) {
			r++
		}
	}
	t.e0, t.r0 = end, r
	if l != t.lastL || r != t.lastR {
		t.lastL, t.lastR = l, r
		t.host = strings.ToLower(strings.Trim(string(b[l:r]), "."))
		t.looksValid = looksLikeHost(t.host)
	}
	return t.host, t.looksValid
}

// acceptIn turns a hit of one scan into the hostname it stands in, or reports false when it is not one:
// substring families (xmpush, micloud) count only inside dotted hostname-like tokens.
func (m *matcher) acceptIn(t *tokens, h hit) (string, bool) {
	host, valid := t.around(h.start, h.end)
	if !m.pats[h.pat].domain && !valid {
		return "", false
	}
	return host, true
}
