package discovery_test

import (
	"net/http"
	"testing"

	"github.com/gatewaykit/gatewaykit/discovery"
)

func TestProxyPathRewriting(t *testing.T) {
	up := upstream(t, echo("a"))
	tests := []struct {
		opt               discovery.Option
		in                string
		wantPath, wantRaw string
		wantQuery         string
	}{
		{discovery.StripPrefix("/api"), "/api/orders/7?x=1", "/orders/7", "", "x=1"},
		{discovery.StripPrefix("/api/"), "/api/orders", "/orders", "", ""},
		{discovery.StripPrefix("/api"), "/api", "/", "", ""},
		{discovery.StripPrefix("/api"), "/api/", "/", "", ""},
		{discovery.StripPrefix("/api"), "/apix/orders", "/apix/orders", "", ""},
		{discovery.StripPrefix("/api"), "/other", "/other", "", ""},
		{discovery.StripPrefix("/api"), "/api/a%2Fb", "/a/b", "/a%2Fb", ""},
		{discovery.ReplacePrefix("/api", "/v1"), "/api/orders", "/v1/orders", "", ""},
		{discovery.ReplacePrefix("/api", "/v1"), "/api", "/v1", "", ""},
		{discovery.ReplacePrefix("/api/v2", "/"), "/api/v2/x", "/x", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, front := newProxy(t, []discovery.Instance{instanceOf(t, up)}, tt.opt)
			req, _ := http.NewRequest("GET", front.URL+tt.in, nil)
			s := doSeen(t, req)
			if s.Path != tt.wantPath || s.RawPath != tt.wantRaw || s.Query != tt.wantQuery {
				t.Fatalf("upstream got path %q raw %q query %q, want %q %q %q", s.Path, s.RawPath, s.Query, tt.wantPath, tt.wantRaw, tt.wantQuery)
			}
		})
	}
}
