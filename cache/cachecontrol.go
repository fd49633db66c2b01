package cache

import (
	"net/http"
	"strings"
)

// maxDelta is the largest delta-seconds value honoured (RFC 9111 §1.2.2: 2^31).
const maxDelta = 1 << 31

// directives is the parsed form of Cache-Control response directives this cache acts on.
// Delta-seconds fields are -1 when the directive is absent.
type directives struct {
	noStore, noCache, private, public bool
	mustRevalidate                    bool // must-revalidate or proxy-revalidate: never serve stale
	maxAge, sMaxAge, swr              int64
	noCacheFields, privateFields      []string // qualified no-cache="..." and private="..." forms
}

// parseCacheControl parses the Cache-Control field lines of a response. It never fails: unknown
// directives are ignored, a delta-seconds directive with an invalid value counts as 0 (so the
// response is stale, RFC 9111 §4.2.1), a repeated delta-seconds directive keeps the smallest
// value, and values are capped at 2^31 seconds.
func parseCacheControl(lines []string) directives {
	d := directives{maxAge: -1, sMaxAge: -1, swr: -1}
	for _, line := range lines {
		for len(line) > 0 {
			var name, value string
			var quoted bool
			name, value, quoted, line = nextDirective(line)
			if name == "" {
				continue
			}
			switch strings.ToLower(name) {
			case "no-store":
				d.noStore = true
			case "no-cache":
				if quoted && value != "" {
					d.noCacheFields = appendFields(d.noCacheFields, value)
				} else {
					d.noCache = true
				}
			case "private":
				if quoted && value != "" {
					d.privateFields = appendFields(d.privateFields, value)
				} else {
					d.private = true
				}
			case "public":
				d.public = true
			case "must-revalidate", "proxy-revalidate":
				d.mustRevalidate = true
			case "max-age":
				d.maxAge = minDelta(d.maxAge, parseDelta(value))
			case "s-maxage":
				d.sMaxAge = minDelta(d.sMaxAge, parseDelta(value))
			case "stale-while-revalidate":
				d.swr = minDelta(d.swr, parseDelta(value))
			}
		}
	}
	return d
}

// nextDirective splits the first directive off s: its name, its value (unquoted, with quoted-pair
// escapes resolved), whether the value was a quoted-string, and the rest of s after the comma.
func nextDirective(s string) (name, value string, quoted bool, rest string) {
	s = strings.TrimLeft(s, " \t,")
	i := 0
	for i < len(s) && s[i] != '=' && s[i] != ',' {
		i++
	}
	name = strings.TrimSpace(s[:i])
	if i == len(s) || s[i] == ',' {
		return name, "", false, s[i:]
	}
	s = strings.TrimLeft(s[i+1:], " \t")
	if len(s) > 0 && s[0] == '"' {
		var b strings.Builder
		j := 1
		for ; j < len(s) && s[j] != '"'; j++ {
			if s[j] == '\\' && j+1 < len(s) {
				j++
			}
			b.WriteByte(s[j])
		}
		if j < len(s) {
			j++ // closing quote
		}
		rest = s[j:]
		if k := strings.IndexByte(rest, ','); k >= 0 {
			rest = rest[k:]
		} else {
			rest = ""
		}
		return name, b.String(), true, rest
	}
	j := strings.IndexByte(s, ',')
	if j < 0 {
		j = len(s)
	}
	return name, strings.TrimSpace(s[:j]), false, s[j:]
}

// parseDelta parses delta-seconds (1*DIGIT), capping at 2^31; anything else is 0.
func parseDelta(s string) int64 {
	if s == "" {
		return 0
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0
		}
		if n < maxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, maxDelta)
}

func minDelta(old, v int64) int64 {
	if old < 0 {
		return v
	}
	return min(old, v)
}

// appendFields appends the canonical header names of a comma-separated field list, skipping
// anything that is not a valid field name.
func appendFields(dst []string, list string) []string {
	for f := range strings.SplitSeq(list, ",") {
		if f = strings.TrimSpace(f); validToken(f) {
			dst = append(dst, http.CanonicalHeaderKey(f))
		}
	}
	return dst
}

// validToken reports whether s is a non-empty RFC 9110 token.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
