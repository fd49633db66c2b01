package bff_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/bff"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const profile = `{"id":7,"name":"Ada Lovelace","avatar":"https://cdn.example.com/a/7.png",` +
	`"email":"ada@example.com","phone":"+44 20 7946 0000","bio":"Mathematician and writer, known for her work on the Analytical Engine.",` +
	`"address":{"street":"12 St James's Square","city":"London","zip":"SW1Y 4JH","country":"GB"},` +
	`"orders":[{"id":1,"total":10.5,"cost":3.1,"items":[{"sku":"a","qty":1}]},{"id":2,"total":20,"cost":7,"items":[]}],` +
	`"preferences":{"theme":"dark","newsletter":true,"language":"en-GB"},"internal_notes":"VIP; handle with care"}`

// upstream serves profile as JSON and records the path it saw.
func upstream(seen *string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen != nil {
			*seen = r.URL.Path
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(profile)))
		w.Header().Set("ETag", `"v1"`)
		_, _ = io.WriteString(w, profile)
	})
}

func serve(t *testing.T, h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func newBFF(t *testing.T, opts ...bff.Option) *bff.BFF {
	t.Helper()
	b, err := bff.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func designVariants() []bff.Option {
	return []bff.Option{
		bff.Variant("mobile", bff.PathPrefix("/mobile/api"), bff.Header("X-Client-Type", "mobile"), bff.Allow("id", "name", "avatar")),
		bff.Variant("web", bff.PathPrefix("/web/api"), bff.Header("X-Client-Type", "web"), bff.Deny("internal_notes")),
		bff.Variant("admin", bff.PathPrefix("/admin/api"), bff.VisibleTo("admin", "internal_notes", "orders[].cost"),
			bff.Deny("orders[].cost"), bff.Deny("orders.items")),
	}
}

func TestDesignBriefMobileVsWeb(t *testing.T) {
	var seen string
	h := newBFF(t, designVariants()...).Wrap(upstream(&seen))

	mobile := serve(t, h, httptest.NewRequest("GET", "/mobile/api/users/7", nil))
	if seen != "/users/7" {
		t.Fatalf("upstream saw %q, want the prefix stripped", seen)
	}
	if got, want := mobile.Body.String(), `{"id":7,"name":"Ada Lovelace","avatar":"https://cdn.example.com/a/7.png"}`; got != want {
		t.Fatalf("mobile body = %s, want %s", got, want)
	}
	if cl := mobile.Header().Get("Content-Length"); cl != strconv.Itoa(mobile.Body.Len()) {
		t.Fatalf("Content-Length = %q, body is %d bytes", cl, mobile.Body.Len())
	}
	if mobile.Header().Get("Etag") != "" {
		t.Fatal("ETag of the unshaped representation kept")
	}

	web := serve(t, h, httptest.NewRequest("GET", "/web/api/users/7", nil))
	var full map[string]any
	if err := json.Unmarshal(web.Body.Bytes(), &full); err != nil {
		t.Fatal(err)
	}
	if _, ok := full["internal_notes"]; ok || len(full) != 9 {
		t.Fatalf("web got %d fields (%v), want everything but internal_notes", len(full), full)
	}
	if mobile.Body.Len()*2 > web.Body.Len() {
		t.Fatalf("mobile %d bytes is not at least 50%% smaller than web %d bytes", mobile.Body.Len(), web.Body.Len())
	}
}

func TestVariantSelection(t *testing.T) {
	var chosen, path, rawPath string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chosen, _ = bff.VariantFrom(r.Context())
		path, rawPath = r.URL.Path, r.URL.RawPath
		if r.RequestURI != r.URL.RequestURI() {
			t.Errorf("RequestURI %q != URL %q", r.RequestURI, r.URL.RequestURI())
		}
	})
	opts := append(designVariants(),
		bff.Variant("tv", bff.When(func(r *http.Request) bool { return r.URL.Query().Get("tv") == "1" })),
		bff.Variant("fallback"), bff.DefaultVariant("fallback"))
	h := newBFF(t, opts...).Wrap(next)
	tests := []struct {
		target, header     string
		variant, path, raw string
	}{
		{target: "/mobile/api/users/7", variant: "mobile", path: "/users/7"},
		{target: "/mobile/api", variant: "mobile", path: "/"},
		{target: "/mobile/apix/users", variant: "fallback", path: "/mobile/apix/users"},
		{target: "/admin/api/files/a%2Fb", variant: "admin", path: "/files/a/b", raw: "/files/a%2Fb"},
		{target: "/users/7", header: "MOBILE", variant: "mobile", path: "/users/7"},
		{target: "/users/7", header: "web", variant: "web", path: "/users/7"},
		{target: "/web/api/x", header: "mobile", variant: "mobile", path: "/web/api/x"}, // mobile is listed first
		{target: "/users/7?tv=1", variant: "tv", path: "/users/7"},
		{target: "/users/7", header: "fridge", variant: "fallback", path: "/users/7"},
	}
	for _, tt := range tests {
		t.Run(tt.target+" "+tt.header, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.target, nil)
			if tt.header != "" {
				r.Header.Set("X-Client-Type", tt.header)
			}
			origPath := r.URL.Path
			w := serve(t, h, r)
			if chosen != tt.variant || path != tt.path || rawPath != tt.raw {
				t.Fatalf("variant %q path %q raw %q; want %q %q %q", chosen, path, rawPath, tt.variant, tt.path, tt.raw)
			}
			if r.URL.Path != origPath {
				t.Fatal("the caller's request was modified")
			}
			if got := w.Header().Values("Vary"); len(got) != 1 || got[0] != "X-Client-Type" {
				t.Fatalf("Vary = %q", got)
			}
		})
	}
}

func TestNoMatchPassesThrough(t *testing.T) {
	h := newBFF(t, designVariants()...).Wrap(upstream(nil))
	w := serve(t, h, httptest.NewRequest("GET", "/api/users/7", nil))
	if w.Body.String() != profile || w.Header().Get("Etag") != `"v1"` {
		t.Fatalf("unmatched request was altered: %s", w.Body.String())
	}
}

func TestNestedAndArrayPaths(t *testing.T) {
	h := newBFF(t, bff.Variant("m", bff.PathPrefix("/m"),
		bff.Allow("id", "address.city", "orders[].total", "orders[].items[].sku", "preferences"),
		bff.Deny("preferences.newsletter"),
		bff.Rename("address.city", "town"), bff.Rename("preferences", "prefs"))).Wrap(upstream(nil))
	w := serve(t, h, httptest.NewRequest("GET", "/m/u", nil))
	want := `{"id":7,"address":{"town":"London"},"orders":[{"total":10.5,"items":[{"sku":"a"}]},{"total":20,"items":[]}],"prefs":{"theme":"dark","language":"en-GB"}}`
	if w.Body.String() != want {
		t.Fatalf("got  %s\nwant %s", w.Body.String(), want)
	}
}

func TestRoleBasedFields(t *testing.T) {
	h := newBFF(t, designVariants()...).Wrap(upstream(nil))
	for _, tt := range []struct {
		name    string
		id      *gatewaykit.Identity
		visible bool
	}{
		{"anonymous", nil, false},
		{"customer", &gatewaykit.Identity{Subject: "u1", Roles: []string{"customer"}}, false},
		{"admin", &gatewaykit.Identity{Subject: "u2", Roles: []string{"support", "admin"}}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/admin/api/users/7", nil)
			if tt.id != nil {
				r = r.WithContext(gatewaykit.WithIdentity(r.Context(), tt.id))
			}
			body := serve(t, h, r).Body.String()
			if got := strings.Contains(body, "internal_notes"); got != tt.visible {
				t.Fatalf("internal_notes visible = %v, want %v: %s", got, tt.visible, body)
			}
			if strings.Contains(body, `"cost"`) {
				t.Fatalf("Deny must win over VisibleTo: %s", body)
			}
			if strings.Contains(body, `"items"`) || !strings.Contains(body, `"total":10.5`) {
				t.Fatalf("orders not shaped: %s", body)
			}
		})
	}
}

func TestPassThroughUntouched(t *testing.T) {
	b := newBFF(t, designVariants()...)
	tests := []struct {
		name   string
		method string
		status int
		ctype  string
		body   string
	}{
		{"html", "GET", 200, "text/html; charset=utf-8", `<p>{"id":1,"secret":2}</p>`},
		{"no content type", "GET", 200, "", `{"id":1,"secret":2}`},
		{"not found json", "GET", 404, "application/json", `{"id":1,"error":"missing"}`},
		{"server error problem", "GET", 500, "application/problem+json", `{"title":"boom","secret":2}`},
		{"redirect", "GET", 302, "application/json", `{"id":1,"secret":2}`},
		{"partial content", "GET", 206, "application/json", `{"id":1,"sec`},
		{"image", "GET", 200, "image/png", "\x89PNG\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := b.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.ctype != "" {
					w.Header().Set("Content-Type", tt.ctype)
				}
				w.Header().Set("Content-Length", strconv.Itoa(len(tt.body)))
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			w := serve(t, h, httptest.NewRequest(tt.method, "/mobile/api/x", nil))
			if w.Code != tt.status || w.Body.String() != tt.body || w.Header().Get("Content-Length") != strconv.Itoa(len(tt.body)) {
				t.Fatalf("got %d %q (CL %s), want %d %q untouched", w.Code, w.Body.String(), w.Header().Get("Content-Length"), tt.status, tt.body)
			}
		})
	}
}

func TestHeadDropsContentLength(t *testing.T) {
	h := newBFF(t, designVariants()...).Wrap(upstream(nil))
	w := serve(t, h, httptest.NewRequest("HEAD", "/mobile/api/users/7", nil))
	if w.Code != 200 || w.Header().Get("Content-Length") != "" {
		t.Fatalf("HEAD: %d, Content-Length %q (the unshaped length must not be announced)", w.Code, w.Header().Get("Content-Length"))
	}
}

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = io.WriteString(zw, s)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestGzipUpstream(t *testing.T) {
	var gotAE string
	compressed := gz(t, profile)
	h := newBFF(t, designVariants()...).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAE = r.Header.Get("Accept-Encoding")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", strconv.Itoa(len(compressed)))
		_, _ = w.Write(compressed)
	}))
	r := httptest.NewRequest("GET", "/mobile/api/users/7", nil)
	r.Header.Set("Accept-Encoding", "br, gzip;q=0.8")
	w := serve(t, h, r)
	if gotAE != "gzip" {
		t.Fatalf("upstream Accept-Encoding = %q, want gzip only", gotAE)
	}
	if w.Header().Get("Content-Encoding") != "gzip" || w.Header().Get("Content-Length") != strconv.Itoa(w.Body.Len()) {
		t.Fatalf("headers %v for a %d-byte body", w.Header(), w.Body.Len())
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":7,"name":"Ada Lovelace","avatar":"https://cdn.example.com/a/7.png"}`; string(plain) != want {
		t.Fatalf("decoded body %s, want %s", plain, want)
	}
}

func TestAcceptEncodingWithoutGzip(t *testing.T) {
	var gotAE []string
	h := newBFF(t, designVariants()...).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAE = r.Header.Values("Accept-Encoding")
	}))
	r := httptest.NewRequest("GET", "/mobile/api/users/7", nil)
	r.Header.Set("Accept-Encoding", "br, gzip;q=0")
	serve(t, h, r)
	if len(gotAE) != 0 {
		t.Fatalf("upstream Accept-Encoding = %q, want none", gotAE)
	}
}

func TestFailClosed(t *testing.T) {
	tests := []struct {
		name     string
		encoding string
		body     []byte
	}{
		{"invalid json", "", []byte(`{"id":7,"secret":`)},
		{"too large", "", []byte(`{"id":7,"secret":"` + strings.Repeat("x", 300) + `"}`)},
		{"gzip bomb", "gzip", gz(t, `{"id":7,"secret":"`+strings.Repeat("x", 5000)+`"}`)},
		{"brotli", "br", []byte("\x1b\x00")},
		{"corrupt gzip", "gzip", []byte("not gzip")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newBFF(t, append(designVariants(), bff.WithMaxBody(256))...).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if tt.encoding != "" {
					w.Header().Set("Content-Encoding", tt.encoding)
				}
				_, _ = w.Write(tt.body[:len(tt.body)/2])
				_, _ = w.Write(tt.body[len(tt.body)/2:])
			}))
			w := serve(t, h, httptest.NewRequest("GET", "/mobile/api/users/7", nil))
			if w.Code != http.StatusBadGateway || w.Header().Get("Content-Type") != gatewaykit.ProblemContentType ||
				w.Header().Get("Content-Encoding") != "" || strings.Contains(w.Body.String(), "secret") {
				t.Fatalf("got %d %v %s, want a 502 problem", w.Code, w.Header(), w.Body.String())
			}
		})
	}
}

func TestStreamingNotBuffered(t *testing.T) {
	release := make(chan struct{})
	h := newBFF(t, designVariants()...).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush: %v", err)
		}
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		_, _ = io.WriteString(w, "data: second\n\n")
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/mobile/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	close(release) // only after the first event arrived: it was not held back
	if err != nil || line != "data: first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
}

func TestNothingWritten(t *testing.T) {
	h := newBFF(t, append(designVariants(), bff.SetResponseHeader("X-Shaped-By", "bff"))...).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
	}))
	w := serve(t, h, httptest.NewRequest("GET", "/mobile/api/x", nil))
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("X-Shaped-By") != "bff" {
		t.Fatalf("got %d %q %v", w.Code, w.Body.String(), w.Header())
	}
}

func TestNewErrors(t *testing.T) {
	tests := map[string][]bff.Option{
		"nothing":             nil,
		"nil option":          {nil},
		"empty name":          {bff.Variant("", bff.PathPrefix("/m"))},
		"duplicate":           {bff.Variant("m", bff.PathPrefix("/m")), bff.Variant("m", bff.PathPrefix("/n"))},
		"no selector":         {bff.Variant("m", bff.Allow("id"))},
		"unknown default":     {bff.Variant("m", bff.PathPrefix("/m")), bff.DefaultVariant("x")},
		"bad prefix":          {bff.Variant("m", bff.PathPrefix("mobile"))},
		"slash prefix":        {bff.Variant("m", bff.PathPrefix("/"))},
		"trailing slash":      {bff.Variant("m", bff.PathPrefix("/m/"))},
		"bad header":          {bff.Variant("m", bff.Header("X Client", "m"))},
		"empty header value":  {bff.Variant("m", bff.Header("X-Client-Type", ""))},
		"nil when":            {bff.Variant("m", bff.When(nil))},
		"bad path":            {bff.Variant("m", bff.PathPrefix("/m"), bff.Allow("a..b"))},
		"empty allow":         {bff.Variant("m", bff.PathPrefix("/m"), bff.Allow())},
		"empty deny":          {bff.Variant("m", bff.PathPrefix("/m"), bff.Deny())},
		"rename twice":        {bff.Variant("m", bff.PathPrefix("/m"), bff.Rename("a", "b"), bff.Rename("a", "c"))},
		"empty role":          {bff.Variant("m", bff.PathPrefix("/m"), bff.VisibleTo("", "a"))},
		"role without paths":  {bff.Variant("m", bff.PathPrefix("/m"), bff.VisibleTo("admin"))},
		"max body":            {bff.Variant("m", bff.PathPrefix("/m")), bff.WithMaxBody(0)},
		"max request body":    {bff.Enrich(), bff.WithMaxRequestBody(-1)},
		"nil error handler":   {bff.Enrich(), bff.WithErrorHandler(nil)},
		"nil meter":           {bff.Enrich(), bff.WithMeterProvider(nil)},
		"nil logger":          {bff.Enrich(), bff.WithLogger(nil)},
		"nil clock":           {bff.Enrich(), bff.WithClock(nil)},
		"bad header op":       {bff.SetRequestHeader("", "x")},
		"header value CRLF":   {bff.SetResponseHeader("X-A", "a\r\nSet-Cookie: x")},
		"bad rename target":   {bff.RenameRequestHeader("X-A", "X B")},
		"nil enrich value":    {bff.EnrichHeader("X-User-ID", nil)},
		"empty body field":    {bff.EnrichBody("", bff.Subject())},
		"nil body value":      {bff.EnrichBody("user_id", nil)},
		"empty default":       {bff.Variant("m", bff.PathPrefix("/m")), bff.DefaultVariant("")},
		"nil variant option":  {bff.Variant("m", nil)},
		"enrich header name":  {bff.EnrichHeader("a:b", bff.Subject())},
		"remove bad response": {bff.RemoveResponseHeader("a b")},
	}
	for name, opts := range tests {
		if _, err := bff.New(opts...); err == nil {
			t.Errorf("%s: New accepted the options", name)
		} else if !strings.HasPrefix(err.Error(), "bff: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
}
