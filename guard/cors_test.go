package guard_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/guard"
)

func TestCORSPreflight(t *testing.T) {
	c := must(guard.NewCORS([]string{"https://shop.example.com", "http://localhost:5173"},
		guard.AllowMethods("GET", "PUT", "DELETE"), guard.AllowHeaders("Authorization", "Content-Type", "X-Request-ID"),
		guard.AllowCredentials(), guard.MaxAge(time.Hour)))
	var reached bool
	h := c.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true }))
	for _, tt := range []struct {
		name    string
		origin  string
		method  string
		headers string
		status  int
	}{
		{"allowed", "https://shop.example.com", "PUT", "authorization, content-type", 204},
		{"allowed, no headers", "http://localhost:5173", "DELETE", "", 204},
		{"safelisted method not listed", "https://shop.example.com", "POST", "", 204},
		{"header case and spacing", "https://shop.example.com", "GET", " X-REQUEST-ID ,Authorization", 204},
		{"origin not allowed", "https://evil.example.com", "GET", "", 403},
		{"origin differs by scheme", "http://shop.example.com", "GET", "", 403},
		{"origin differs by port", "https://shop.example.com:8443", "GET", "", 403},
		{"suffix attack", "https://shop.example.com.evil.net", "GET", "", 403},
		{"null origin", "null", "GET", "", 403},
		{"method not allowed", "https://shop.example.com", "PATCH", "", 403},
		{"header not allowed", "https://shop.example.com", "GET", "authorization, x-admin", 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reached = false
			req := httptest.NewRequest("OPTIONS", "/api/orders", nil)
			req.Header.Set("Origin", tt.origin)
			req.Header.Set("Access-Control-Request-Method", tt.method)
			if tt.headers != "" {
				req.Header.Set("Access-Control-Request-Headers", tt.headers)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			hd := rec.Header()
			if rec.Code != tt.status || reached {
				t.Fatalf("status %d reached %v, want %d and the handler untouched", rec.Code, reached, tt.status)
			}
			if !strings.Contains(hd.Get("Vary"), "Origin") {
				t.Fatalf("Vary %q", hd.Get("Vary"))
			}
			if tt.status == 403 {
				problemOf(t, hd, rec.Body.String())
				if hd.Get("Access-Control-Allow-Origin") != "" {
					t.Fatal("a rejected preflight carries Allow-Origin")
				}
				return
			}
			if hd.Get("Access-Control-Allow-Origin") != tt.origin || hd.Get("Access-Control-Allow-Credentials") != "true" ||
				hd.Get("Access-Control-Allow-Methods") != "GET, PUT, DELETE" ||
				hd.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type, X-Request-ID" ||
				hd.Get("Access-Control-Max-Age") != "3600" {
				t.Fatalf("preflight headers %v", hd)
			}
		})
	}
}

func TestCORSActualRequests(t *testing.T) {
	c := must(guard.NewCORS([]string{"https://Shop.Example.com"}, guard.ExposeHeaders("X-Request-ID"), guard.AllowCredentials()))
	h := c.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Accept-Encoding")
	}))
	for _, tt := range []struct {
		name, method, origin string
		allowed              bool
	}{
		{"allowed", "GET", "https://shop.example.com", true},
		{"not allowed still served", "POST", "https://evil.example.com", false},
		{"same-origin request", "GET", "", false},
		{"OPTIONS without preflight headers reaches the handler", "OPTIONS", "https://shop.example.com", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/", nil)
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			hd := rec.Header()
			if rec.Code != 200 {
				t.Fatalf("status %d", rec.Code)
			}
			if got := hd.Values("Vary"); len(got) != 2 || got[0] != "Origin" || got[1] != "Accept-Encoding" {
				t.Fatalf("Vary %q", got)
			}
			if tt.allowed {
				if hd.Get("Access-Control-Allow-Origin") != tt.origin || hd.Get("Access-Control-Allow-Credentials") != "true" ||
					hd.Get("Access-Control-Expose-Headers") != "X-Request-ID" {
					t.Fatalf("headers %v", hd)
				}
			} else if hd.Get("Access-Control-Allow-Origin") != "" || hd.Get("Access-Control-Allow-Credentials") != "" {
				t.Fatalf("CORS headers for a disallowed origin: %v", hd)
			}
		})
	}
}

func TestCORSWildcard(t *testing.T) {
	c := must(guard.NewCORS([]string{"*"}, guard.AllowHeaders("*")))
	req := httptest.NewRequest("OPTIONS", "/", nil)
	req.Header.Set("Origin", "https://anyone.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "x-custom")
	rec := httptest.NewRecorder()
	c.Wrap(okHandler).ServeHTTP(rec, req)
	if rec.Code != 204 || rec.Header().Get("Access-Control-Allow-Origin") != "*" ||
		rec.Header().Get("Access-Control-Allow-Headers") != "x-custom" || rec.Header().Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
}

func TestCORSConstruction(t *testing.T) {
	for name, tt := range map[string]struct {
		origins []string
		opts    []guard.Option
	}{
		"no origins":                 {nil, nil},
		"wildcard with credentials":  {[]string{"*"}, []guard.Option{guard.AllowCredentials()}},
		"wildcard among others":      {[]string{"*", "https://a.example"}, nil},
		"any header with credential": {[]string{"https://a.example"}, []guard.Option{guard.AllowHeaders("*"), guard.AllowCredentials()}},
		"path in origin":             {[]string{"https://a.example/"}, nil},
		"no scheme":                  {[]string{"a.example"}, nil},
		"null":                       {[]string{"null"}, nil},
		"other scheme":               {[]string{"ftp://a.example"}, nil},
		"userinfo":                   {[]string{"https://u@a.example"}, nil},
		"query":                      {[]string{"https://a.example?"}, nil},
		"bad method":                 {[]string{"https://a.example"}, []guard.Option{guard.AllowMethods("GE T")}},
		"bad header":                 {[]string{"https://a.example"}, []guard.Option{guard.AllowHeaders("X:Y")}},
		"bad expose":                 {[]string{"https://a.example"}, []guard.Option{guard.ExposeHeaders("")}},
		"negative max age":           {[]string{"https://a.example"}, []guard.Option{guard.MaxAge(-time.Second)}},
		"misplaced":                  {[]string{"https://a.example"}, []guard.Option{guard.QueueSize(1)}},
	} {
		if _, err := guard.NewCORS(tt.origins, tt.opts...); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// FuzzCORSPreflight: whatever a browser (or attacker) sends, the guard never panics, a 204 only
// ever goes to a listed origin, and nothing but a preflight is answered without the handler.
func FuzzCORSPreflight(f *testing.F) {
	f.Add("OPTIONS", "https://shop.example.com", "PUT", "authorization, x-request-id")
	f.Add("OPTIONS", "https://evil.example", "GET", "")
	f.Add("OPTIONS", "null", "DELETE", ",,, ,")
	f.Add("GET", "https://shop.example.com", "", "")
	f.Add("OPTIONS", "https://SHOP.example.com", "get", "Content-Type,\tAuthorization")
	c := must(guard.NewCORS([]string{"https://shop.example.com"}, guard.AllowMethods("GET", "PUT"),
		guard.AllowHeaders("Authorization", "X-Request-ID")))
	f.Fuzz(func(t *testing.T, method, origin, reqMethod, reqHeaders string) {
		if validHeaderToken(method) != nil {
			return
		}
		req := httptest.NewRequest("GET", "/", nil)
		req.Method = method
		req.Header["Origin"] = []string{origin}
		req.Header["Access-Control-Request-Method"] = []string{reqMethod}
		req.Header["Access-Control-Request-Headers"] = []string{reqHeaders}
		reached := false
		rec := httptest.NewRecorder()
		c.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true })).ServeHTTP(rec, req)
		preflight := method == "OPTIONS" && origin != "" && reqMethod != ""
		if reached == preflight {
			t.Fatalf("preflight=%v but handler reached=%v", preflight, reached)
		}
		if rec.Code == 204 && origin != "https://shop.example.com" {
			t.Fatalf("204 for origin %q", origin)
		}
		if acao := rec.Header().Get("Access-Control-Allow-Origin"); acao != "" && acao != "https://shop.example.com" {
			t.Fatalf("Allow-Origin %q", acao)
		}
	})
}

func validHeaderToken(s string) error {
	if s == "" || strings.ContainsAny(s, " \t\r\n\x00") {
		return http.ErrNotSupported
	}
	return nil
}
