package guard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/gatewaykit/gatewaykit/guard"
)

// naiveBackend is how a lax backend (double decoding, backslash separators, servlet path
// parameters) would read a forwarded path.
func naiveBackend(p string) string {
	for range 2 {
		if d, err := url.PathUnescape(p); err == nil {
			p = d
		}
	}
	p = strings.ReplaceAll(p, `\`, "/")
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if j := strings.IndexByte(s, ';'); j >= 0 {
			segs[i] = s[:j]
		}
	}
	return path.Clean("/" + strings.Join(segs, "/"))
}

func reachesAdmin(p string) bool {
	n := naiveBackend(p)
	return n == "/admin" || strings.HasPrefix(n, "/admin/")
}

// gateway is a real ServeMux with a deny rule on /admin and a public catch-all that records the
// path it would forward upstream.
type gateway struct {
	mu        sync.Mutex
	forwarded []string
}

func (g *gateway) mux() *http.ServeMux {
	mux := http.NewServeMux()
	deny := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "denied", http.StatusForbidden)
	})
	mux.Handle("/admin", deny)
	mux.Handle("/admin/", deny)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.forwarded = append(g.forwarded, r.URL.EscapedPath())
		g.mu.Unlock()
		_, _ = io.WriteString(w, "public "+r.URL.EscapedPath())
	})
	return mux
}

func (g *gateway) bypasses() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, p := range g.forwarded {
		if reachesAdmin(p) {
			out = append(out, p)
		}
	}
	return out
}

func TestPathSafetyBypasses(t *testing.T) {
	g := &gateway{}
	ps := must(guard.NewPathSafety())
	srv := httptest.NewServer(ps.Wrap(g.mux()))
	defer srv.Close()

	tests := []struct {
		target string
		status int
		reason string // expected problem detail fragment for 400s
	}{
		{"/public/x", 200, ""},
		{"/admin", 403, ""},
		{"/admin/users", 403, ""},
		{"/ADMIN", 200, ""},   // a different path on a case-sensitive mux: not a bypass
		{"/%61dmin", 403, ""}, // a needless encoding is canonicalized, then denied
		{"/public/../admin", 400, "dot segment"},
		{"/public/./admin", 400, "dot segment"},
		{"/public/..", 400, "dot segment"},
		{"/api/%2e%2e/admin", 400, "encoded dot segment"},
		{"/api/%2E%2e/admin", 400, "encoded dot segment"},
		{"/api/.%2E/admin", 400, "encoded dot segment"},
		{"/api/%2e/admin", 400, "encoded dot segment"},
		{"/api/%252e%252e/admin", 400, "twice"},
		{"/api/%252E%252E/admin", 400, "twice"},
		{"/api/..%2fadmin", 400, "encoded slash"},
		{"/api/..%2Fadmin", 400, "encoded slash"},
		{"/public%5c..%5cadmin", 400, "encoded slash"},
		{`/public\..\admin`, 400, "backslash"},
		{"//admin", 400, "empty segment"},
		{"/public//admin", 400, "empty segment"},
		{"/admin;x", 400, "semicolon"},
		{"/public/..;/admin", 400, "semicolon"},
		{"/admin%00", 400, "control"},
		{"/admin%0d%0aX-Injected:%201", 400, "control"},
		{"/admin%zz", 400, ""}, // rejected by net/http itself before the guard
		{"http://gw.test/public/../admin", 400, "dot segment"},
		{"/public/file.json?next=/../admin", 200, ""}, // the query is not the path
		{"/public/...", 200, ""},                      // three dots are a name, not a dot segment
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			resp, body := rawGet(t, srv, tt.target)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (body %q)", resp.StatusCode, tt.status, body)
			}
			if tt.status == 400 && tt.reason != "" {
				p := problemOf(t, resp.Header, body)
				if d, _ := p["detail"].(string); !strings.Contains(d, tt.reason) {
					t.Fatalf("detail = %q, want it to mention %q", d, tt.reason)
				}
			}
		})
	}
	if b := g.bypasses(); len(b) > 0 {
		t.Fatalf("paths a lax backend reads as /admin were forwarded: %q", b)
	}
}

// TestPathSafetyControl shows the bypasses are real without the guard, so the table above can fail.
func TestPathSafetyControl(t *testing.T) {
	g := &gateway{}
	srv := httptest.NewServer(g.mux())
	defer srv.Close()
	for _, target := range []string{"/api/%2e%2e/admin", "/admin;x", "/api/%252e%252e/admin", `/public\..\admin`} {
		if resp, body := rawGet(t, srv, target); resp.StatusCode != 200 {
			t.Fatalf("%s without guard: status %d (%q), want the public handler", target, resp.StatusCode, body)
		}
	}
	if b := g.bypasses(); len(b) != 4 {
		t.Fatalf("without the guard %d bypasses reached the public handler (%q), want 4", len(b), b)
	}
}

func TestPathSafetyDisabledRulesStillCanonical(t *testing.T) {
	g := &gateway{}
	ps := must(guard.NewPathSafety(guard.DisableRules(guard.DotSegments | guard.EmptySegments | guard.EncodedDotSegments)))
	srv := httptest.NewServer(ps.Wrap(g.mux()))
	defer srv.Close()
	for _, tt := range []struct {
		target string
		status int
		body   string
	}{
		{"/public/../admin", 403, ""},
		{"//admin", 403, ""},
		{"/api/%2e%2e/admin", 403, ""},
		{"/public//x/./y/", 200, "public /public/x/y/"},
		{"/admin;x", 400, ""}, // still on
	} {
		resp, body := rawGet(t, srv, tt.target)
		if resp.StatusCode != tt.status || !strings.Contains(body, tt.body) {
			t.Errorf("%s: %d %q, want %d %q", tt.target, resp.StatusCode, body, tt.status, tt.body)
		}
	}
	if b := g.bypasses(); len(b) > 0 {
		t.Fatalf("bypasses forwarded: %q", b)
	}
}

func TestPathSafetyEncodedSlashOptIn(t *testing.T) {
	var seen *http.Request
	ps := must(guard.NewPathSafety(guard.DisableRules(guard.EncodedSlashes)))
	srv := httptest.NewServer(ps.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r
	})))
	defer srv.Close()
	resp, _ := rawGet(t, srv, "/files/a%2Fb.txt?x=1")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if seen.URL.EscapedPath() != "/files/a%2Fb.txt" || seen.URL.Path != "/files/a/b.txt" {
		t.Fatalf("escaped %q path %q", seen.URL.EscapedPath(), seen.URL.Path)
	}
	if resp, _ := rawGet(t, srv, "/files/%2e%2e%2Fsecret"); resp.StatusCode != 400 {
		t.Fatalf("encoded dot segment with encoded slash allowed: %d, want 400", resp.StatusCode)
	}
}

func TestPathSafetyRewritesRequestURI(t *testing.T) {
	ps := must(guard.NewPathSafety())
	var uri, p, raw string
	h := ps.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uri, p, raw = r.RequestURI, r.URL.Path, r.URL.RawPath
	}))
	req := httptest.NewRequest("GET", "/%61pi/%7Eu?q=%2e%2e", nil)
	h.ServeHTTP(httptest.NewRecorder(), req)
	if uri != "/api/~u?q=%2e%2e" || p != "/api/~u" || raw != "" {
		t.Fatalf("RequestURI %q Path %q RawPath %q", uri, p, raw)
	}
}

func TestPathSafetyChecksRewrittenURL(t *testing.T) {
	// An earlier handler changed r.URL; the guard checks that too.
	ps := must(guard.NewPathSafety())
	req := httptest.NewRequest("GET", "/ok", nil)
	req.URL = must(url.Parse("/x/%2e%2e/admin"))
	rec := httptest.NewRecorder()
	ps.Wrap(okHandler).ServeHTTP(rec, req)
	if rec.Code != 400 {
		t.Fatalf("status %d, want 400", rec.Code)
	}
}

func TestRuleString(t *testing.T) {
	if s := (guard.EncodedDotSegments | guard.Semicolons).String(); s != "encoded_dot_segment|semicolon" {
		t.Fatalf("String = %q", s)
	}
	if _, err := guard.NewPathSafety(guard.DisableRules(0)); err == nil {
		t.Fatal("DisableRules(0) accepted")
	}
	if _, err := guard.NewPathSafety(guard.DisableRules(1 << 14)); err == nil {
		t.Fatal("unknown rule accepted")
	}
}

// FuzzPathSafety checks that the guard never panics and that whatever it lets through is one
// clean path that a lax backend reads the same way.
func FuzzPathSafety(f *testing.F) {
	for _, s := range []string{"/a/b", "/public/../admin", "/api/%2e%2e/admin", "//admin", "/%252e", "/a%2fb", `/a\b`, "/a;b", "/%00", "/%", "/a/./b/", "/%7E/%61"} {
		f.Add(s)
	}
	ps, err := guard.NewPathSafety()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p string) {
		u, err := url.ParseRequestURI(p)
		if err != nil || !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#") {
			return
		}
		req := &http.Request{Method: "GET", URL: u, RequestURI: p, Header: http.Header{}, Host: "x"}
		var seen *http.Request
		ps.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r })).ServeHTTP(httptest.NewRecorder(), req)
		if seen == nil {
			return
		}
		got := seen.URL.EscapedPath()
		if dec, err := url.PathUnescape(got); err != nil || dec != seen.URL.Path {
			t.Fatalf("%q: escaped path %q does not decode to the routed path %q", p, got, seen.URL.Path)
		}
		if clean := path.Clean(got); clean != strings.TrimSuffix(got, "/") && got != "/" {
			t.Fatalf("%q: passed with unclean path %q", p, got)
		}
		if n := naiveBackend(got); n != path.Clean(seen.URL.Path) {
			t.Fatalf("%q: gateway routes %q, a lax backend reads %q", p, seen.URL.Path, n)
		}
	})
}

func TestPathSafetyStaleRawPath(t *testing.T) {
	// A handler before the guard set Path but left the parsed RawPath behind.
	ps := must(guard.NewPathSafety())
	req := httptest.NewRequest("GET", "/%7Eu", nil) // RawPath "/%7Eu", a clean path
	req.URL.Path = "/x/../admin"
	rec := httptest.NewRecorder()
	ps.Wrap(okHandler).ServeHTTP(rec, req)
	if rec.Code != 400 {
		t.Fatalf("status %d, want 400", rec.Code)
	}
}
