package guard_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/guard"
)

func TestSecurityHeadersDefaults(t *testing.T) {
	s := must(guard.NewSecurityHeaders())
	rec := httptest.NewRecorder()
	s.Wrap(okHandler).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	want := map[string]string{
		"Content-Security-Policy":   "default-src 'none'; frame-ancestors 'none'",
		"X-Content-Type-Options":    "nosniff",
		"Referrer-Policy":           "no-referrer",
		"Strict-Transport-Security": "", // plain HTTP: never
	}
	for k, v := range want {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestSecurityHeadersHSTS(t *testing.T) {
	proxies := must(gatewaykit.NewClientIPResolver("192.0.2.0/24"))
	trusting := must(guard.NewSecurityHeaders(guard.WithClientIP(proxies)))
	plain := must(guard.NewSecurityHeaders())
	for _, tt := range []struct {
		name  string
		s     *guard.SecurityHeaders
		tls   bool
		peer  string
		proto []string
		want  bool
	}{
		{"TLS", plain, true, "203.0.113.1:1", nil, true},
		{"plain", plain, false, "203.0.113.1:1", nil, false},
		{"client claims https, no trusted proxies", plain, false, "192.0.2.1:1", []string{"https"}, false},
		{"untrusted peer claims https", trusting, false, "203.0.113.1:1", []string{"https"}, false},
		{"trusted proxy says https", trusting, false, "192.0.2.1:1", []string{"HTTPS"}, true},
		{"trusted proxy says http", trusting, false, "192.0.2.1:1", []string{"http"}, false},
		{"client-sent https before the proxy's http", trusting, false, "192.0.2.1:1", []string{"https, http"}, false},
		{"two lines, last from the proxy", trusting, false, "192.0.2.1:1", []string{"http", "https"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = tt.peer
			if tt.tls {
				req.TLS = &tls.ConnectionState{}
			}
			for _, p := range tt.proto {
				req.Header.Add("X-Forwarded-Proto", p)
			}
			rec := httptest.NewRecorder()
			tt.s.Wrap(okHandler).ServeHTTP(rec, req)
			got := rec.Header().Get("Strict-Transport-Security")
			if (got != "") != tt.want || (tt.want && got != guard.DefaultHSTS) {
				t.Fatalf("HSTS %q, want sent=%v", got, tt.want)
			}
		})
	}
}

func TestSecurityHeadersOverrides(t *testing.T) {
	s := must(guard.NewSecurityHeaders(
		guard.SecurityHeader("content-security-policy", "default-src 'self'"),
		guard.SecurityHeader("Referrer-Policy", ""),
		guard.SecurityHeader("Permissions-Policy", "geolocation=()"),
		guard.HSTS("max-age=300"),
	))
	h := s.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "handler-set") // a handler replaces a default
		w.Header().Add("Permissions-Policy", "camera=()")       // Add never touches the shared value
	}))
	req := httptest.NewRequest("GET", "/", nil)
	req.TLS = &tls.ConnectionState{}
	for range 2 { // the second response proves the first did not modify the shared values
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		hd := rec.Header()
		if hd.Get("Content-Security-Policy") != "default-src 'self'" || hd.Get("Referrer-Policy") != "" ||
			hd.Get("Strict-Transport-Security") != "max-age=300" || hd.Get("X-Content-Type-Options") != "handler-set" ||
			len(hd.Values("Permissions-Policy")) != 2 || hd.Values("Permissions-Policy")[0] != "geolocation=()" {
			t.Fatalf("headers %v", hd)
		}
	}
	noHSTS := must(guard.NewSecurityHeaders(guard.HSTS("")))
	rec := httptest.NewRecorder()
	noHSTS.Wrap(okHandler).ServeHTTP(rec, req)
	if rec.Header().Get("Strict-Transport-Security") != "" {
		t.Fatal("HSTS(\"\") still sent")
	}
}

func TestSecurityHeadersConstruction(t *testing.T) {
	for name, opt := range map[string]guard.Option{
		"bad name":          guard.SecurityHeader("X Bad", "v"),
		"CRLF value":        guard.SecurityHeader("X-A", "v\r\nSet-Cookie: x"),
		"HSTS via generic":  guard.SecurityHeader("Strict-Transport-Security", "max-age=1"),
		"HSTS CRLF":         guard.HSTS("max-age=1\n"),
		"misplaced":         guard.MaxHeaders(1),
		"no error handling": guard.WithErrorHandler(gatewaykit.WriteProblem),
	} {
		if _, err := guard.NewSecurityHeaders(opt); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestHardenedServer(t *testing.T) {
	srv := guard.HardenedServer(":0", okHandler)
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 ||
		srv.MaxHeaderBytes < guard.DefaultMaxHeaderBytes || srv.Handler == nil || srv.Addr != ":0" {
		t.Fatalf("not hardened: %+v", srv)
	}
}
