package edify

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/romforge/romforge/internal/failure"
)

// Kind is the kind of a syntax tree node.
type Kind int

const (
	Literal Kind = iota // a string: quoted or a bare word
	Call                // Name(Args...)
	Seq                 // a ; b
	Concat              // a + b
	Eq                  // a == b
	Ne                  // a != b
	And                 // a && b
	Or                  // a || b
	Not                 // !a
	If                  // if Args[0] then Args[1] [else Args[2]] endif
)

// Node is one expression. Literal and Call carry Value (the string, or the function name).
type Node struct {
	Kind  Kind
	Value string
	Args  []*Node
	Line  int
}

// SyntaxError reports a malformed script; it satisfies errors.Is(err, failure.ErrInvalid).
type SyntaxError struct {
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("edify: line %d: %s", e.Line, e.Msg) }

// Unwrap classifies the error as invalid input.
func (e *SyntaxError) Unwrap() error { return failure.ErrInvalid }

type tokKind int

const (
	tEOF tokKind = iota
	tString
	tWord
	tLParen
	tRParen
	tComma
	tSemi
	tPlus
	tEq
	tNe
	tAnd
	tOr
	tNot
	tIf
	tThen
	tElse
	tEndif
)

type token struct {
	kind tokKind
	val  string
	line int
}

// Limits keep hostile scripts from exhausting memory or the stack.
const (
	maxScript = 4 << 20
	maxDepth  = 200
)

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == ':' || c == '/' || c == '.'
}

func lex(src string) ([]token, error) {
	var toks []token
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '"':
			start := line
			var b strings.Builder
			i++
			for {
				if i >= len(src) {
					return nil, &SyntaxError{start, "unterminated string"}
				}
				c := src[i]
				if c == '"' {
					i++
					break
				}
				if c == '\n' {
					line++
				}
				if c != '\\' {
					b.WriteByte(c)
					i++
					continue
				}
				if i+1 >= len(src) {
					return nil, &SyntaxError{line, "unterminated escape"}
				}
				e := src[i+1]
				i += 2
				switch e {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case '"':
					b.WriteByte('"')
				case '\\':
					b.WriteByte('\\')
				case 'x':
					if i+2 > len(src) {
						return nil, &SyntaxError{line, `\x needs two hex digits`}
					}
					v, err := strconv.ParseUint(src[i:i+2], 16, 8)
					if err != nil {
						return nil, &SyntaxError{line, `\x needs two hex digits`}
					}
					b.WriteByte(byte(v))
					i += 2
				default:
					return nil, &SyntaxError{line, fmt.Sprintf(`unknown escape \%c`, e)}
				}
			}
			toks = append(toks, token{tString, b.String(), start})
		case isWordByte(c):
			j := i
			for j < len(src) && isWordByte(src[j]) {
				j++
			}
			w := src[i:j]
			k := tWord
			switch w {
			case "if":
				k = tIf
			case "then":
				k = tThen
			case "else":
				k = tElse
			case "endif":
				k = tEndif
			}
			toks = append(toks, token{k, w, line})
			i = j
		default:
			two := ""
			if i+1 < len(src) {
				two = src[i : i+2]
			}
			switch {
			case two == "==":
				toks = append(toks, token{tEq, two, line})
				i += 2
			case two == "!=":
				toks = append(toks, token{tNe, two, line})
				i += 2
			case two == "&&":
				toks = append(toks, token{tAnd, two, line})
				i += 2
			case two == "||":
				toks = append(toks, token{tOr, two, line})
				i += 2
			default:
				k := map[byte]tokKind{'(': tLParen, ')': tRParen, ',': tComma, ';': tSemi, '+': tPlus, '!': tNot}[c]
				if k == tEOF {
					return nil, &SyntaxError{line, fmt.Sprintf("unexpected character %q", c)}
				}
				toks = append(toks, token{k, string(c), line})
				i++
			}
		}
	}
	return append(toks, token{tEOF, "", line}), nil
}

type parser struct {
	toks  []token
	pos   int
	depth int
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

// Parse parses a whole updater-script. An empty script yields a nil node.
func Parse(src string) (*Node, error) {
	if len(src) > maxScript {
		return nil, &SyntaxError{0, fmt.Sprintf("script of %d bytes is larger than %d", len(src), maxScript)}
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	if p.peek().kind == tEOF {
		return nil, nil
	}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, &SyntaxError{t.line, fmt.Sprintf("unexpected %.60q", t.val)}
	}
	return n, nil
}

// Binding powers, loosest first, as in AOSP's grammar: ';' < else < '||' < '&&' < '==' '!=' < '+' < '!'.
func binding(k tokKind) int {
	switch k {
	case tSemi:
		return 1
	case tOr:
		return 3
	case tAnd:
		return 4
	case tEq, tNe:
		return 5
	case tPlus:
		return 6
	}
	return 0
}

// ends reports tokens that close an expression (a trailing ';' before them is allowed).
func ends(k tokKind) bool {
	return k == tEOF || k == tRParen || k == tComma || k == tThen || k == tElse || k == tEndif
}

func (p *parser) expr(minBP int) (*Node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, &SyntaxError{p.peek().line, "expressions nested too deeply"}
	}
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		bp := binding(t.kind)
		if bp == 0 || bp <= minBP {
			return left, nil
		}
		p.next()
		if t.kind == tSemi {
			// "a;" alone, or "a; b".
			if ends(p.peek().kind) {
				continue
			}
		}
		right, err := p.expr(bp)
		if err != nil {
			return nil, err
		}
		kind := map[tokKind]Kind{tSemi: Seq, tOr: Or, tAnd: And, tEq: Eq, tNe: Ne, tPlus: Concat}[t.kind]
		left = &Node{Kind: kind, Args: []*Node{left, right}, Line: t.line}
	}
}

func (p *parser) expect(k tokKind, what string) error {
	if t := p.next(); t.kind != k {
		if t.kind == tEOF {
			return &SyntaxError{t.line, "unexpected end of script, expected " + what}
		}
		return &SyntaxError{t.line, fmt.Sprintf("unexpected %.60q, expected %s", t.val, what)}
	}
	return nil
}

func (p *parser) unary() (*Node, error) {
	t := p.next()
	switch t.kind {
	case tString:
		return &Node{Kind: Literal, Value: t.val, Line: t.line}, nil
	case tWord:
		if p.peek().kind != tLParen {
			return &Node{Kind: Literal, Value: t.val, Line: t.line}, nil
		}
		p.next()
		call := &Node{Kind: Call, Value: t.val, Line: t.line}
		if p.peek().kind == tRParen {
			p.next()
			return call, nil
		}
		for {
			a, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			call.Args = append(call.Args, a)
			if p.peek().kind == tComma {
				p.next()
				continue
			}
			if err := p.expect(tRParen, `")" or ","`); err != nil {
				return nil, err
			}
			return call, nil
		}
	case tLParen:
		n, err := p.expr(0)
		if err != nil {
			return nil, err
		}
		return n, p.expect(tRParen, `")"`)
	case tNot:
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxDepth {
			return nil, &SyntaxError{t.line, "expressions nested too deeply"}
		}
		n, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &Node{Kind: Not, Args: []*Node{n}, Line: t.line}, nil
	case tIf:
		cond, err := p.expr(0)
		if err != nil {
			return nil, err
		}
		if err := p.expect(tThen, `"then"`); err != nil {
			return nil, err
		}
		then, err := p.expr(0)
		if err != nil {
			return nil, err
		}
		n := &Node{Kind: If, Args: []*Node{cond, then}, Line: t.line}
		if p.peek().kind == tElse {
			p.next()
			els, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			n.Args = append(n.Args, els)
		}
		return n, p.expect(tEndif, `"endif"`)
	case tEOF:
		return nil, &SyntaxError{t.line, "unexpected end of script"}
	}
	return nil, &SyntaxError{t.line, fmt.Sprintf("unexpected %.60q", t.val)}
}

// Walk calls fn for n and every node below it in source order (a call before its arguments). It uses
// an explicit stack: a script of many statements is a very deep left-leaning tree.
func Walk(n *Node, fn func(*Node)) {
	if n == nil {
		return
	}
	stack := []*Node{n}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		fn(n)
		for i := len(n.Args) - 1; i >= 0; i-- {
			stack = append(stack, n.Args[i])
		}
	}
}

// Static returns the value of an expression made only of literals and concatenations.
func Static(n *Node) (string, bool) {
	if n == nil {
		return "", false
	}
	var b strings.Builder
	ok := true
	Walk(n, func(x *Node) {
		switch x.Kind {
		case Literal:
			b.WriteString(x.Value)
		case Concat:
		default:
			ok = false
		}
	})
	if !ok {
		return "", false
	}
	return b.String(), true
}
