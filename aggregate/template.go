package aggregate

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/gatewaykit/gatewaykit/internal/jsonpath"
)

// template is a parsed URL template: literal text and {variables}.
type template struct {
	segs []tseg
}

type tseg struct {
	lit   string
	name  string // variable name; empty for a literal
	query bool   // the variable sits in the query: query escaping; else path escaping
	dep   int    // index of the part the variable reads from, or -1
	path  jsonpath.Path
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return s[0] != '.' && s[len(s)-1] != '.' && !strings.Contains(s, "..")
}

// parseTemplate parses s. network requires an absolute http(s) URL with no variable before the
// path; otherwise s must be a path starting with '/'. partIndex maps part names to indexes, for
// variables that read another part's result ("order.product_id").
func parseTemplate(s string, network bool, partIndex map[string]int) (*template, error) {
	t := &template{}
	inQuery := false
	rest := s
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		lit := rest
		if open >= 0 {
			lit = rest[:open]
		}
		if strings.ContainsAny(lit, "}") {
			return nil, fmt.Errorf("unbalanced '}' in %q", s)
		}
		if strings.Contains(lit, "#") {
			return nil, fmt.Errorf("fragment in %q", s)
		}
		if lit != "" {
			t.segs = append(t.segs, tseg{lit: lit, dep: -1})
			if strings.Contains(lit, "?") {
				inQuery = true
			}
		}
		if open < 0 {
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("unclosed '{' in %q", s)
		}
		name := rest[open+1 : open+end]
		if !validVarName(name) {
			return nil, fmt.Errorf("invalid variable name %q in %q (letters, digits, '_', '-', '.')", name, s)
		}
		seg := tseg{name: name, query: inQuery, dep: -1}
		if first, field, ok := strings.Cut(name, "."); ok {
			if i, isPart := partIndex[first]; isPart {
				p, err := jsonpath.Parse(field)
				if err != nil || p.HasArray() {
					return nil, fmt.Errorf("variable %q: bad field path", name)
				}
				seg.dep, seg.path = i, p
			}
		}
		t.segs = append(t.segs, seg)
		rest = rest[open+end+1:]
	}
	// Check the shape with every variable replaced by a harmless value.
	var b strings.Builder
	firstVar := -1
	for _, sg := range t.segs {
		if sg.name == "" {
			b.WriteString(sg.lit)
			continue
		}
		if firstVar < 0 {
			firstVar = b.Len()
		}
		b.WriteString("x")
	}
	sample := b.String()
	u, err := url.Parse(sample)
	if err != nil {
		return nil, fmt.Errorf("%q is not a valid URL template: %w", s, err)
	}
	if network {
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%q must be an absolute http or https URL", s)
		}
		// Variables may not choose the scheme or the host.
		if firstVar >= 0 {
			hostEnd := strings.Index(sample, "://") + 3
			if i := strings.IndexAny(sample[hostEnd:], "/?"); i >= 0 {
				hostEnd += i
			} else {
				hostEnd = len(sample)
			}
			if firstVar < hostEnd {
				return nil, fmt.Errorf("%q: variables may appear only in the path and query, not the scheme or host", s)
			}
		}
	} else if !strings.HasPrefix(s, "/") || u.Host != "" {
		return nil, fmt.Errorf("%q must be a path starting with '/' for an in-process handler", s)
	}
	return t, nil
}

// expand builds the URL with each variable's value escaped for its position. lookup returns a
// variable's value; an error from it aborts expansion.
func (t *template) expand(lookup func(sg *tseg) (string, error)) (string, error) {
	var b strings.Builder
	for i := range t.segs {
		sg := &t.segs[i]
		if sg.name == "" {
			b.WriteString(sg.lit)
			continue
		}
		v, err := lookup(sg)
		if err != nil {
			return "", err
		}
		if sg.query {
			b.WriteString(url.QueryEscape(v))
			continue
		}
		if v == "." || v == ".." {
			return "", &partError{kind: kindInvalidValue, detail: "invalid value for " + sg.name}
		}
		b.WriteString(url.PathEscape(v))
	}
	return b.String(), nil
}
