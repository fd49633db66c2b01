package discovery_test

import (
	"net/http"
	"testing"

	"github.com/gatewaykit/gatewaykit/discovery"
)

// A rewritten path must stay under the replacement prefix: dot segments would let
// "/api/../admin" reach "/admin" of the upstream once it resolves "/v1/../admin".
func TestProxyPathRewritingCannotEscapePrefix(t *testing.T) {
	up := upstream(t, echo("a"))
	_, front := newProxy(t, []discovery.Instance{instanceOf(t, up)}, discovery.ReplacePrefix("/api", "/v1"))
	for _, path := range []string{"/api/../admin", "/api/%2e%2e/admin", "/api/%2E%2e", "/api/./x", "/api/x/../../admin", "/api/.."} {
		t.Run(path, func(t *testing.T) {
			req, _ := http.NewRequest("GET", front.URL+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400 for a path with dot segments", resp.StatusCode)
			}
			if p := decodeProblem(t, resp); p.Status != 400 {
				t.Fatalf("problem %+v", p)
			}
		})
	}
	// Dots inside a segment are ordinary characters.
	req, _ := http.NewRequest("GET", front.URL+"/api/a..b/.well-known/x.y", nil)
	if s := doSeen(t, req); s.Path != "/v1/a..b/.well-known/x.y" {
		t.Fatalf("upstream path %q", s.Path)
	}
	// "/api%2Fx" is one segment "api/x", not the prefix "/api" followed by "/x".
	req, _ = http.NewRequest("GET", front.URL+"/api%2Fx", nil)
	if s := doSeen(t, req); s.Path != "/api/x" || s.RawPath != "/api%2Fx" {
		t.Fatalf("upstream path %q raw %q, want it forwarded unchanged", s.Path, s.RawPath)
	}
}
