package guard

import (
	"errors"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/gatewaykit/gatewaykit"
)

// Rule is one check of the path-safety guard. Rules combine with |.
type Rule uint16

// The path-safety rules. All are on by default; DisableRules turns some off.
const (
	// EncodedDotSegments rejects a segment that decodes to "." or ".." and spells a dot
	// percent-encoded in any case: /%2e%2e/, /.%2E/, /%2e/.
	EncodedDotSegments Rule = 1 << iota
	// DoubleEncoding rejects "%25", an encoded percent sign (%252e, %252F, %250%61): a path that
	// means one thing to the gateway and another to a backend that decodes twice. A literal '%'
	// in a path can only be sent as %25, so this rule also rejects paths that name one.
	DoubleEncoding
	// EncodedSlashes rejects %2F and %5C (any case): an encoded separator inside a segment.
	EncodedSlashes
	// Backslashes rejects a raw backslash, a path separator to some backends.
	Backslashes
	// ControlBytes rejects NUL and the other ASCII control bytes (0x00-0x1F, 0x7F), raw or
	// percent-encoded.
	ControlBytes
	// DotSegments rejects the plain dot segments /./ and /../ (also at the end of the path).
	DotSegments
	// EmptySegments rejects empty segments: //admin, /a//b.
	EmptySegments
	// Semicolons rejects a raw ';' in the path: path parameters (/admin;x) that servlet
	// containers strip before routing.
	Semicolons

	// AllRules is every rule; the default of NewPathSafety.
	AllRules = EncodedDotSegments | DoubleEncoding | EncodedSlashes | Backslashes | ControlBytes |
		DotSegments | EmptySegments | Semicolons
)

// malformed is an invalid percent-encoding; it is always rejected.
const malformed Rule = 1 << 15

var ruleNames = [...]struct {
	rule         Rule
	name, detail string
}{
	{malformed, "malformed_encoding", "The request path has an invalid percent-encoding."},
	{ControlBytes, "control_bytes", "The request path contains a control character."},
	{EncodedDotSegments, "encoded_dot_segment", "The request path contains an encoded dot segment."},
	{DoubleEncoding, "double_encoding", "The request path is percent-encoded twice."},
	{EncodedSlashes, "encoded_slash", "The request path contains an encoded slash or backslash."},
	{Backslashes, "backslash", "The request path contains a backslash."},
	{DotSegments, "dot_segment", "The request path contains a dot segment."},
	{EmptySegments, "empty_segment", "The request path contains an empty segment."},
	{Semicolons, "semicolon", "The request path contains a semicolon."},
}

// String returns the metric reason of a single rule ("encoded_dot_segment", ...), or the names of
// a combination joined by "|".
func (r Rule) String() string {
	var parts []string
	for _, n := range ruleNames {
		if r&n.rule != 0 {
			parts = append(parts, n.name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

// DisableRules turns the given path-safety rules off (default: all rules on). Use it only for
// backends that need the construct and agree with the gateway on its meaning: with DotSegments or
// EmptySegments disabled the guard resolves them, so routing still sees one cleaned path.
// Applies to NewPathSafety.
func DisableRules(rules Rule) Option {
	return func(c *config) error {
		if err := c.applies("DisableRules", kindPath); err != nil {
			return err
		}
		if rules&^AllRules != 0 || rules == 0 {
			return errors.New("guard: DisableRules: unknown or empty rule set")
		}
		c.allowed |= rules
		return nil
	}
}

// PathSafety rejects requests whose path can be read in more than one way, before routing and
// every policy run, and hands the rest on with one canonical path. See NewPathSafety.
// A PathSafety is immutable and safe for concurrent use.
type PathSafety struct {
	check   Rule
	onErr   func(w http.ResponseWriter, r *http.Request, why Rule)
	reasons map[Rule]reason
}

// NewPathSafety returns the path-safety guard. It inspects the path exactly as the client sent it
// (r.RequestURI, and r.URL.EscapedPath() when an earlier handler changed the URL) and rejects
// with a 400 problem a path with an invalid percent-encoding or that breaks a rule (all on by
// default, see Rule). A request that passes continues with r.URL.Path cleaned (dot and empty
// segments resolved when their rules are disabled, trailing slash kept), r.URL.RawPath cleared
// unless an allowed encoded slash needs it, and r.RequestURI rewritten to match, so the ServeMux,
// authorization rules and proxies all see the same path. Letter case is left alone: /ADMIN and
// /admin are different paths.
//
// Options: DisableRules, WithErrorHandler, WithMeterProvider.
func NewPathSafety(opts ...Option) (*PathSafety, error) {
	c, err := newConfig(kindPath, opts)
	if err != nil {
		return nil, err
	}
	m, err := newRejections(c.meter)
	if err != nil {
		return nil, err
	}
	p := &PathSafety{check: AllRules &^ c.allowed, reasons: make(map[Rule]reason, len(ruleNames))}
	for _, n := range ruleNames {
		p.reasons[n.rule] = newReason("path", n.name)
	}
	onErr := c.onErr
	p.onErr = func(w http.ResponseWriter, r *http.Request, why Rule) {
		m.add(r.Context(), p.reasons[why])
		for _, n := range ruleNames {
			if n.rule == why {
				onErr(w, r, gatewaykit.NewProblem(http.StatusBadRequest, n.detail))
				return
			}
		}
	}
	return p, nil
}

// Wrap returns next behind the path-safety guard.
func (p *PathSafety) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := requestPath(r.RequestURI)
		found, fix := scanPath(raw)
		if u := r.URL; u.RawPath != "" || u.Path != raw {
			// When an earlier handler changed the URL, or the request has no RequestURI, check
			// the path everything after us will use too.
			if esc := u.EscapedPath(); esc != raw {
				f2, fix2 := scanPath(esc)
				found, fix = found|f2, fix|fix2
			}
		}
		if bad := found & (p.check | malformed); bad != 0 {
			p.onErr(w, r, first(bad))
			return
		}
		if fix != 0 {
			canonicalize(r, fix)
		}
		next.ServeHTTP(w, r)
	})
}

// first returns the highest-priority rule in a non-empty set, in ruleNames order.
func first(set Rule) Rule {
	for _, n := range ruleNames {
		if set&n.rule != 0 {
			return n.rule
		}
	}
	return set
}

// requestPath returns the path part of a request target: origin form "/p?q", absolute form
// "http://h/p?q"; "" for "*" and authority form.
func requestPath(target string) string {
	if target == "" || target == "*" {
		return ""
	}
	if target[0] != '/' {
		i := strings.Index(target, "://")
		if i < 0 {
			return ""
		}
		target = target[i+3:]
		j := strings.IndexByte(target, '/')
		if j < 0 {
			return ""
		}
		target = target[j:]
	}
	if i := strings.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	return target
}

// What canonicalize must do, reported by scanPath.
const (
	fixEncoding   = 1 << iota // a percent-encoding: RawPath may be set
	fixSegments               // dot or empty segments to resolve
	fixEncodedSep             // an encoded separator: keep the escaped form
)

// scanPath reports every rule p breaks and what canonicalize must fix. Most paths hold only
// letters, digits and single slashes: they are recognized in one cheap pass.
func scanPath(p string) (found Rule, fix int) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c == '%' || c == '.' || c == '\\' || c == ';' || c == 0x7f ||
			(c == '/' && i > 0 && p[i-1] == '/') {
			return scanPathFull(p)
		}
	}
	return 0, 0
}

// scanPathFull reports every rule p breaks and what canonicalize must fix. Raw and encoded slashes
// and backslashes all end a segment, so an allowed %2F or backslash cannot hide a dot segment
// from a backend that treats it as a separator. It never allocates.
func scanPathFull(p string) (found Rule, fix int) {
	var dots, other int // dots and other bytes in the current segment
	encDot := false     // the current segment spells a dot encoded
	inSeg := false      // a separator was seen: the bytes since belong to a segment
	for i := 0; i <= len(p); i++ {
		sep := i == len(p)
		var b byte
		if !sep {
			b = p[i]
			switch {
			case b == '%':
				if i+2 >= len(p) || !ishex(p[i+1]) || !ishex(p[i+2]) {
					found |= malformed
					other++
					continue
				}
				b = unhex(p[i+1])<<4 | unhex(p[i+2])
				i += 2
				fix |= fixEncoding
				switch {
				case b == '.':
					dots++
					encDot = true
					continue
				case b == '%':
					found |= DoubleEncoding
				case b == '/' || b == '\\':
					found |= EncodedSlashes
					fix |= fixEncodedSep
					sep = true
				case b < 0x20 || b == 0x7f:
					found |= ControlBytes
				}
			case b == '.':
				dots++
				continue
			case b == '/':
				sep = true
			case b == '\\':
				found |= Backslashes
				sep = true
			case b == ';':
				found |= Semicolons
			case b < 0x20 || b == 0x7f:
				found |= ControlBytes
			}
			if !sep {
				other++
				continue
			}
		}
		if inSeg {
			switch {
			case other == 0 && dots == 0 && i < len(p):
				found |= EmptySegments
				fix |= fixSegments
			case other == 0 && (dots == 1 || dots == 2):
				if encDot {
					found |= EncodedDotSegments
				} else {
					found |= DotSegments
				}
				fix |= fixSegments
			}
		}
		inSeg, dots, other, encDot = true, 0, 0, false
	}
	return found, fix
}

// canonicalize rewrites r's URL to its one clean form.
func canonicalize(r *http.Request, fix int) {
	u := r.URL
	if fix&fixEncodedSep != 0 {
		esc := cleanPath(u.EscapedPath())
		if dec, err := url.PathUnescape(esc); err == nil {
			u.Path, u.RawPath = dec, esc
		}
	} else {
		u.Path, u.RawPath = cleanPath(u.Path), ""
	}
	if r.RequestURI != "" {
		r.RequestURI = u.RequestURI()
	}
}

// cleanPath is path.Clean that keeps a trailing slash, as http.ServeMux does.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
