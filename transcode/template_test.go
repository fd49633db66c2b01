package transcode

import (
	"slices"
	"strings"
	"testing"
)

func TestParseTemplate(t *testing.T) {
	good := []struct{ in, canon string }{
		{"/v1/users/{id}", "/v1/users/{id}"},
		{"/v1/{name=shelves/*/books/*}", "/v1/{name=shelves/*/books/*}"},
		{"/v1/{name=**}", "/v1/{name=**}"},
		{"/v1/{a.b.c=*}:get", "/v1/{a.b.c}:get"},
		{"/v1/x:batch%3Aget", "/v1/x:batch%3Aget"},
		{"/v1/*/**", "/v1/*/**"},
		{"/a%2Fb/{x}", "/a%2Fb/{x}"},
		{"/v1/{x=a/*}/y/{z}", "/v1/{x=a/*}/y/{z}"},
	}
	for _, g := range good {
		tm, err := parseTemplate(g.in)
		if err != nil {
			t.Errorf("%q: %v", g.in, err)
			continue
		}
		if tm.String() != g.canon {
			t.Errorf("%q renders %q, want %q", g.in, tm.String(), g.canon)
		}
	}
	bad := []string{"", "v1/x", "/", "/v1//x", "/v1/", "/v1/{", "/v1/{}", "/v1/{x", "/v1/{x=}", "/v1/{x={y}}",
		"/v1/**/x", "/v1/{x=**}/y", "/v1/{x}/{x}", "/v1/{1x}", "/v1/{a..b}", "/v1/x:", "/v1/x:a:b", "/v1/a b",
		"/v1/%zz", "/v1/{x}}", "/v1/x?y", "/v1/{x=a}:{y}", "/" + strings.Repeat("a", maxTemplateLen)}
	for _, b := range bad {
		if tm, err := parseTemplate(b); err == nil {
			t.Errorf("%q accepted as %q", b, tm)
		}
	}
}

func TestTemplateMatch(t *testing.T) {
	tests := []struct {
		tmpl, path string
		ok         bool
		vals       []string
	}{
		{"/v1/users/{id}", "/v1/users/42", true, []string{"42"}},
		{"/v1/users/{id}", "/v1/users/a%2Fb%20c", true, []string{"a/b c"}},
		{"/v1/users/{id}", "/v1/users/", false, nil},
		{"/v1/users/{id}", "/v1/users/1/2", false, nil},
		{"/v1/users/{id}", "/v1/users", false, nil},
		{"/v1/{name=shelves/*/books/*}", "/v1/shelves/s1/books/b%2F2", true, []string{"shelves/s1/books/b%2F2"}},
		{"/v1/{name=shelves/*/books/*}", "/v1/shelves/s1/cds/b", false, nil},
		{"/v1/{name=**}", "/v1/a/b/c", true, []string{"a/b/c"}},
		{"/v1/{name=**}", "/v1", true, []string{""}},
		{"/v1/{name=**}", "/v1/a//c", false, nil},
		{"/v1/{name=x/**}:lookup", "/v1/x/y/z:lookup", true, []string{"x/y/z"}},
		{"/v1/{name=x/**}:lookup", "/v1/x/y/z%3Alookup", false, nil},
		{"/v1/{name=x/**}:lookup", "/v1/x/y/z:look%75p", true, []string{"x/y/z"}},
		{"/v1/{name=x/**}:lookup", "/v1/x/y/z", false, nil},
		{"/v1/{name=x/**}:lookup", "/v1/x/y/z:other", false, nil},
		{"/v1/{id}:cancel", "/v1/:cancel", false, nil},
		{"/v1/{id}", "/v1/7:cancel", true, []string{"7:cancel"}},
		{"/v1/{id}", "/v1/%zz", true, nil}, // matches, but is a bad escape
		{"/a%2Fb", "/a%2Fb", true, nil},
		{"/a%2Fb", "/a/b", false, nil},
	}
	for _, tc := range tests {
		tm, err := parseTemplate(tc.tmpl)
		if err != nil {
			t.Fatalf("%q: %v", tc.tmpl, err)
		}
		vals, ok, err := tm.match(tc.path)
		if ok != tc.ok || (err == nil && !slices.Equal(vals, tc.vals)) {
			t.Errorf("%q on %q: ok=%v vals=%q err=%v; want ok=%v vals=%q", tc.tmpl, tc.path, ok, vals, err, tc.ok, tc.vals)
		}
		if tc.path == "/v1/%zz" && err != errBadEscape {
			t.Errorf("bad escape not reported: %v", err)
		}
	}
}

func TestTemplateOrder(t *testing.T) {
	in := []string{"/v1/{name=**}", "/v1/*/x", "/v1/users/{id}", "/v1/users/{id}:get", "/v1/users/me"}
	var ts []*template
	for _, s := range in {
		tm, _ := parseTemplate(s)
		ts = append(ts, tm)
	}
	slices.SortStableFunc(ts, func(a, b *template) int {
		switch {
		case a.less(b):
			return -1
		case b.less(a):
			return 1
		}
		return 0
	})
	var got []string
	for _, tm := range ts {
		got = append(got, tm.String())
	}
	want := []string{"/v1/users/{id}:get", "/v1/users/me", "/v1/users/{id}", "/v1/*/x", "/v1/{name=**}"}
	if !slices.Equal(got, want) {
		t.Fatalf("order %q, want %q", got, want)
	}
}

// FuzzParseTemplate checks that parsing never panics, that a parsed template renders to a form
// that parses to the same template, and that matching any path never panics and binds every
// variable.
func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"/v1/users/{id}", "/v1/{name=shelves/*/books/**}:get", "/v1/*/**", "/a%2Fb/{x.y=z/*}",
		"/{", "/v1/{x={y}}", "/v1/x:a:b", "/%", "/v1/{a=**}/b", "/:x", "/v1/{id}:%3A"} {
		f.Add(s, "/v1/users/42")
		f.Add(s, "/v1/shelves/a/books/b/c:get")
	}
	f.Fuzz(func(t *testing.T, tmpl, path string) {
		tm, err := parseTemplate(tmpl)
		if err != nil {
			return
		}
		canon := tm.String()
		tm2, err := parseTemplate(canon)
		if err != nil {
			t.Fatalf("%q renders %q which does not parse: %v", tmpl, canon, err)
		}
		if tm2.String() != canon {
			t.Fatalf("%q: canonical form unstable: %q then %q", tmpl, canon, tm2.String())
		}
		vals, ok, err := tm.match(path)
		if ok && err == nil && len(vals) != len(tm.vars) {
			t.Fatalf("%q on %q: %d values for %d variables", tmpl, path, len(vals), len(tm.vars))
		}
		// The canonical template's own path (variables filled) matches.
		if _, ok, _ := tm.match(samplePath(tm)); !ok {
			t.Fatalf("%q does not match its sample path %q", canon, samplePath(tm))
		}
	})
}

// samplePath builds a request path the template must match.
func samplePath(tm *template) string {
	var b strings.Builder
	for _, sg := range tm.segs {
		b.WriteByte('/')
		switch sg.kind {
		case segLiteral:
			b.WriteString(escapeLiteral(sg.lit))
		default:
			b.WriteString("v")
		}
	}
	if tm.verb != "" {
		b.WriteString(":" + escapeLiteral(tm.verb))
	}
	return b.String()
}
