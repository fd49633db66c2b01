package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatewaykit/gatewaykit/auth/authtest"
)

// FuzzDemoToken: the demo token endpoint takes its claims from an untrusted query string; it
// never panics, answers 200 or 400, and a minted token carries exactly the requested subject.
func FuzzDemoToken(f *testing.F) {
	for _, q := range []string{"sub=alice&roles=customer&tier=free", "sub=", "", "sub=%ff&roles=,,", "sub=a&roles=admin,x&tier=premium&exp=1", "sub=" + strings.Repeat("x", 65), "sub=a&sub=b", "sub=a%00b", "sub=a&tier=%e2%80%8f"} {
		f.Add(q)
	}
	idp, err := authtest.New("http://127.0.0.1:1", "ES256")
	if err != nil {
		f.Fatal(err)
	}
	mux := http.NewServeMux()
	(&demoServices{idp: idp}).routes(mux, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.Fuzz(func(t *testing.T, q string) {
		req := httptest.NewRequest(http.MethodGet, "/demo/token", nil)
		req.URL.RawQuery = q
		req.Header.Set("Accept", "text/plain")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		v := req.URL.Query()
		sub := v.Get("sub")
		valid := demoClaimValue(sub) && (v.Get("roles") == "" || demoClaimValue(v.Get("roles"))) && (v.Get("tier") == "" || demoClaimValue(v.Get("tier")))
		switch rec.Code {
		case http.StatusOK:
			parts := strings.Split(strings.TrimSpace(rec.Body.String()), ".")
			if !valid || len(parts) != 3 {
				t.Fatalf("query %q: 200 with %q", q, rec.Body)
			}
			payload, err := base64.RawURLEncoding.DecodeString(parts[1])
			var claims struct {
				Sub string `json:"sub"`
			}
			if err != nil || json.Unmarshal(payload, &claims) != nil || claims.Sub != sub {
				t.Fatalf("query %q: token subject %q, want %q (%v)", q, claims.Sub, sub, err)
			}
		case http.StatusBadRequest:
			if valid {
				t.Fatalf("query %q: 400 for valid claims", q)
			}
		default:
			t.Fatalf("query %q: status %d", q, rec.Code)
		}
	})
}
