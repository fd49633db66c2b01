package transcode

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// The google.api.http path template grammar (google/api/http.proto):
//
//	Template = "/" Segments [ Verb ] ;
//	Segments = Segment { "/" Segment } ;
//	Segment  = "*" | "**" | LITERAL | Variable ;
//	Variable = "{" FieldPath [ "=" Segments ] "}" ;
//	FieldPath = IDENT { "." IDENT } ;
//	Verb     = ":" LITERAL ;
//
// with the rules: "**" only as the last segment, variables do not nest, a variable without
// segments is "{x=*}", a field path is bound at most once. LITERAL is one or more of the RFC 3986
// unreserved and sub-delims characters and "@", or percent-encoded octets; ':' is only the verb
// separator.

type segKind uint8

const (
	segLiteral segKind = iota
	segWild            // *   exactly one non-empty segment
	segDeep            // **  zero or more non-empty segments, last only
)

type segment struct {
	kind segKind
	lit  string // decoded literal
}

type tmplVar struct {
	path       []string // field path
	start, end int      // segments [start, end)
}

type template struct {
	segs []segment
	vars []tmplVar
	verb string // decoded
}

const maxTemplateLen = 4096

type templateParser struct {
	s    string
	pos  int
	t    *template
	seen map[string]bool
}

func parseTemplate(s string) (*template, error) {
	if len(s) > maxTemplateLen {
		return nil, fmt.Errorf("template longer than %d bytes", maxTemplateLen)
	}
	if !strings.HasPrefix(s, "/") {
		return nil, errors.New(`template must start with "/"`)
	}
	body, verb := s[1:], ""
	if i := verbSeparator(body); i >= 0 {
		body, verb = body[:i], body[i+1:]
		dec, err := decodeLiteral(verb)
		if err != nil {
			return nil, fmt.Errorf("verb: %w", err)
		}
		verb = dec
	}
	p := &templateParser{s: body, t: &template{verb: verb}, seen: map[string]bool{}}
	if err := p.segments(false); err != nil {
		return nil, err
	}
	if p.pos != len(p.s) {
		return nil, fmt.Errorf("unexpected %q at offset %d", p.s[p.pos], p.pos+1)
	}
	for i, sg := range p.t.segs {
		if sg.kind == segDeep && i != len(p.t.segs)-1 {
			return nil, errors.New(`"**" must be the last segment`)
		}
	}
	return p.t, nil
}

// verbSeparator returns the index of the ':' that starts the verb: outside braces and after the
// last '/' outside braces; -1 when there is none.
func verbSeparator(s string) int {
	depth, lastSlash := 0, -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
		case '/':
			if depth == 0 {
				lastSlash = i
			}
		}
	}
	depth = 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
		case ':':
			if depth == 0 && i > lastSlash {
				return i
			}
		}
	}
	return -1
}

func (p *templateParser) segments(inVar bool) error {
	for {
		if err := p.segment(inVar); err != nil {
			return err
		}
		if p.pos < len(p.s) && p.s[p.pos] == '/' {
			p.pos++
			continue
		}
		return nil
	}
}

func (p *templateParser) segment(inVar bool) error {
	rest := p.s[p.pos:]
	switch {
	case strings.HasPrefix(rest, "**"):
		p.pos += 2
		p.t.segs = append(p.t.segs, segment{kind: segDeep})
	case strings.HasPrefix(rest, "*"):
		p.pos++
		p.t.segs = append(p.t.segs, segment{kind: segWild})
	case strings.HasPrefix(rest, "{"):
		if inVar {
			return errors.New("variables cannot nest")
		}
		return p.variable()
	default:
		n := 0
		for n < len(rest) && literalByte(rest[n]) {
			n++
		}
		if n == 0 {
			if rest == "" {
				return errors.New("empty segment")
			}
			return fmt.Errorf("unexpected %q at offset %d", rest[0], p.pos+1)
		}
		lit, err := decodeLiteral(rest[:n])
		if err != nil {
			return err
		}
		p.pos += n
		p.t.segs = append(p.t.segs, segment{kind: segLiteral, lit: lit})
	}
	return nil
}

func (p *templateParser) variable() error {
	p.pos++ // '{'
	start := p.pos
	for p.pos < len(p.s) && (identByte(p.s[p.pos]) || p.s[p.pos] == '.') {
		p.pos++
	}
	name := p.s[start:p.pos]
	path := strings.Split(name, ".")
	for _, id := range path {
		if id == "" || id[0] >= '0' && id[0] <= '9' {
			return fmt.Errorf("invalid field path %q", name)
		}
	}
	if p.seen[name] {
		return fmt.Errorf("field path %q bound twice", name)
	}
	p.seen[name] = true
	v := tmplVar{path: path, start: len(p.t.segs)}
	if p.pos < len(p.s) && p.s[p.pos] == '=' {
		p.pos++
		if err := p.segments(true); err != nil {
			return err
		}
	} else {
		p.t.segs = append(p.t.segs, segment{kind: segWild})
	}
	if p.pos >= len(p.s) || p.s[p.pos] != '}' {
		return fmt.Errorf("variable %q is not closed", name)
	}
	p.pos++
	v.end = len(p.t.segs)
	p.t.vars = append(p.t.vars, v)
	return nil
}

func identByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// literalByte: RFC 3986 unreserved, sub-delims except '=', '@', and '%' (checked by decodeLiteral).
func literalByte(c byte) bool {
	if identByte(c) {
		return true
	}
	switch c {
	case '-', '.', '~', '!', '$', '&', '\'', '(', ')', '+', ',', ';', '@', '%':
		return true
	}
	return false
}

func decodeLiteral(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty literal")
	}
	for i := 0; i < len(s); i++ {
		if !literalByte(s[i]) {
			return "", fmt.Errorf("invalid character %q in literal", s[i])
		}
	}
	dec, err := url.PathUnescape(s)
	if err != nil {
		return "", fmt.Errorf("invalid escape in literal %q", s)
	}
	return dec, nil
}

// String renders the template in canonical form.
func (t *template) String() string {
	var b strings.Builder
	vi := 0
	for i := 0; i < len(t.segs); i++ {
		b.WriteByte('/')
		if vi < len(t.vars) && t.vars[vi].start == i {
			v := t.vars[vi]
			vi++
			b.WriteString("{" + strings.Join(v.path, "."))
			if !(v.end == v.start+1 && t.segs[i].kind == segWild) {
				b.WriteByte('=')
				for j := v.start; j < v.end; j++ {
					if j > v.start {
						b.WriteByte('/')
					}
					b.WriteString(t.segs[j].render())
				}
			}
			b.WriteByte('}')
			i = v.end - 1
			continue
		}
		b.WriteString(t.segs[i].render())
	}
	if t.verb != "" {
		b.WriteString(":" + escapeLiteral(t.verb))
	}
	return b.String()
}

func (s segment) render() string {
	switch s.kind {
	case segWild:
		return "*"
	case segDeep:
		return "**"
	}
	return escapeLiteral(s.lit)
}

func escapeLiteral(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if literalByte(c) && c != '%' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// errBadEscape reports a malformed percent-encoding in a request path.
var errBadEscape = errors.New("malformed percent-encoding")

// match matches an escaped request path (r.URL.EscapedPath()) and returns the variables' values,
// in the order of t.vars. Single-segment variables are fully percent-decoded; multi-segment ones
// keep "%2F" encoded so the value's slashes stay unambiguous. err is errBadEscape for a path that
// matches but cannot be decoded.
func (t *template) match(path string) (vals []string, ok bool, err error) {
	parts, ok := splitPath(path)
	if !ok {
		return nil, false, nil
	}
	return t.matchParts(parts)
}

// splitPath splits an escaped request path into its segments; ok is false without a leading '/'.
func splitPath(path string) ([]string, bool) {
	if !strings.HasPrefix(path, "/") {
		return nil, false
	}
	return strings.Split(path[1:], "/"), true
}

// matchParts is match over a path split once by splitPath, so a router tries many templates
// without splitting again. parts is not modified.
func (t *template) matchParts(parts []string) (vals []string, ok bool, err error) {
	if t.verb != "" {
		// Only a literal ':' separates the verb; "%3A" is part of the segment. The verb itself is
		// compared decoded.
		last := parts[len(parts)-1]
		i := strings.LastIndexByte(last, ':')
		if i <= 0 {
			return nil, false, nil
		}
		verb, err := url.PathUnescape(last[i+1:])
		if err != nil || verb != t.verb {
			return nil, false, nil
		}
		parts = append(parts[:len(parts)-1:len(parts)-1], last[:i])
	}
	n := len(t.segs)
	hasDeep := n > 0 && t.segs[n-1].kind == segDeep
	if len(parts) < n-boolInt(hasDeep) || !hasDeep && len(parts) != n {
		return nil, false, nil
	}
	if hasDeep && len(parts) == n-1 && parts[len(parts)-1] == "" {
		return nil, false, nil
	}
	for i, sg := range t.segs {
		switch sg.kind {
		case segLiteral:
			if parts[i] != sg.lit {
				dec, err := url.PathUnescape(parts[i])
				if err != nil || dec != sg.lit {
					return nil, false, nil
				}
			}
		case segWild:
			if parts[i] == "" {
				return nil, false, nil
			}
		case segDeep:
			for _, p := range parts[i:] {
				if p == "" {
					return nil, false, nil
				}
			}
		}
	}
	if len(t.vars) == 0 {
		return nil, true, nil
	}
	vals = make([]string, len(t.vars))
	for vi, v := range t.vars {
		end := v.end
		if end == n && hasDeep {
			end = len(parts)
		}
		if v.end-v.start == 1 && t.segs[v.start].kind != segDeep {
			s, err := url.PathUnescape(parts[v.start])
			if err != nil {
				return nil, true, errBadEscape
			}
			vals[vi] = s
			continue
		}
		var b strings.Builder
		for j := v.start; j < end && j < len(parts); j++ {
			if j > v.start {
				b.WriteByte('/')
			}
			s, err := url.PathUnescape(parts[j])
			if err != nil {
				return nil, true, errBadEscape
			}
			b.WriteString(strings.ReplaceAll(s, "/", "%2F"))
		}
		vals[vi] = b.String()
	}
	return vals, true, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// less orders templates from the most to the least specific, so the first match is the best one:
// with a verb before without; then segment by segment, literal before "*" before "**"; then longer
// before shorter.
func (t *template) less(o *template) bool {
	if (t.verb != "") != (o.verb != "") {
		return t.verb != ""
	}
	for i := 0; i < len(t.segs) && i < len(o.segs); i++ {
		if t.segs[i].kind != o.segs[i].kind {
			return t.segs[i].kind < o.segs[i].kind
		}
	}
	return len(t.segs) > len(o.segs)
}
