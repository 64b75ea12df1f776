package audit

import "strings"

// matcher finds many patterns at once in a byte stream (Aho-Corasick over ASCII-lowercased bytes),
// with hostname boundary rules for domain patterns.
type matcher struct {
	next   [][256]int32
	out    [][]int32 // pattern indices ending at each state (including via suffix links)
	pats   []pattern
	maxLen int
}

type pattern struct {
	text string
	// domain patterns must stand as a whole hostname label sequence: no hostname character right
	// before, and none after (a final dot is allowed).
	domain bool
}

var lower [256]byte

// hostChar marks bytes that can be part of a hostname label.
var hostChar [256]bool

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
}

func newMatcher(pats []pattern) *matcher {
	m := &matcher{next: make([][256]int32, 1), out: make([][]int32, 1)}
	for i, p := range pats {
		p.text = strings.ToLower(p.text)
		pats[i] = p
		s := int32(0)
		for j := 0; j < len(p.text); j++ {
			c := p.text[j]
			if m.next[s][c] == 0 {
				m.next = append(m.next, [256]int32{})
				m.out = append(m.out, nil)
				m.next[s][c] = int32(len(m.next) - 1)
			}
			s = m.next[s][c]
		}
		m.out[s] = append(m.out[s], int32(i))
		m.maxLen = max(m.maxLen, len(p.text))
	}
	m.pats = pats
	// Breadth-first: fill failure transitions into a full DFA.
	fail := make([]int32, len(m.next))
	var queue []int32
	for c := 0; c < 256; c++ {
		if s := m.next[0][c]; s != 0 {
			queue = append(queue, s)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		m.out[s] = append(m.out[s], m.out[fail[s]]...)
		for c := 0; c < 256; c++ {
			t := m.next[s][c]
			if t != 0 {
				fail[t] = m.next[fail[s]][c]
				queue = append(queue, t)
			} else {
				m.next[s][c] = m.next[fail[s]][c]
			}
		}
	}
	// Upper-case input bytes follow the lower-case edges.
	for s := range m.next {
		for c := 'A'; c <= 'Z'; c++ {
			m.next[s][c] = m.next[s][c+32]
		}
	}
	return m
}

// hit is one match: pattern index and the byte range of the match in the scanned buffer.
type hit struct {
	pat        int
	start, end int
}

// scan reports matches in b whose end lies beyond from (earlier ones were reported with the previous
// chunk). Boundary checks look at the bytes around the match inside b.
func (m *matcher) scan(b []byte, from int, fn func(hit)) {
	s := int32(0)
	next := m.next
	for i := 0; i < len(b); i++ {
		s = next[s][b[i]]
		if m.out[s] == nil || i < from {
			continue
		}
		for _, pi := range m.out[s] {
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
