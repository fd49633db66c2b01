package discovery_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/gatewaykit/gatewaykit/discovery"
)

// capture records the outbound request of an in-memory round trip.
type capture struct {
	mu  sync.Mutex
	out *http.Request
}

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.out = r
	c.mu.Unlock()
	return cannedTransport{body: "ok"}.RoundTrip(r)
}

func FuzzStripPrefix(f *testing.F) {
	for _, s := range []string{"/api/orders", "/api", "/apix", "/api/../x", "/api/%2e%2e/", "/api//x", "/", "/api/a%2Fb?x=1"} {
		f.Add(s)
	}
	res, err := discovery.NewStatic(map[string][]discovery.Instance{"svc": {{Address: "10.0.0.1", Port: 80}}})
	if err != nil {
		f.Fatal(err)
	}
	defer res.Close()
	c := &capture{}
	p, err := discovery.NewProxy(res, "svc", discovery.WithTransport(c), discovery.StripPrefix("/api"))
	if err != nil {
		f.Fatal(err)
	}
	defer p.Close()
	f.Fuzz(func(t *testing.T, path string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \t\r\n#") {
			return
		}
		req, err := http.NewRequest("GET", "http://gw.example"+path, nil)
		if err != nil {
			return
		}
		in := req.URL.Path
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("%q: status %d", path, rec.Code)
		}
		c.mu.Lock()
		out := c.out.URL
		c.mu.Unlock()
		if out.Host != "10.0.0.1:80" || out.Scheme != "http" {
			t.Fatalf("%q: forwarded to %s://%s", path, out.Scheme, out.Host)
		}
		want := in
		if in == "/api" {
			want = "/"
		} else if strings.HasPrefix(in, "/api/") {
			want = in[len("/api"):]
		}
		if out.Path != want {
			t.Fatalf("%q: upstream path %q, want %q", path, out.Path, want)
		}
		if dec, err := url.PathUnescape(out.EscapedPath()); err != nil || dec != out.Path {
			t.Fatalf("%q: escaped path %q does not decode to path %q", path, out.EscapedPath(), out.Path)
		}
	})
}
