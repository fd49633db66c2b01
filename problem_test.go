package gatewaykit_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit"
)

func TestWriteProblem(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		p          *gatewaykit.Problem
		reqID      string
		wantStatus int
		wantBody   map[string]any
		wantHeader map[string]string
	}{
		{
			name: "defaults", p: &gatewaykit.Problem{}, wantStatus: 500,
			wantBody: map[string]any{"type": "about:blank", "title": "Internal Server Error", "status": 500.0},
		},
		{
			name: "nil problem", p: nil, wantStatus: 500,
			wantBody: map[string]any{"type": "about:blank", "title": "Internal Server Error", "status": 500.0},
		},
		{
			name: "rate limited", p: gatewaykit.NewProblem(429, "rate limit exceeded").WithRetryAfter(1500 * time.Millisecond),
			wantStatus: 429,
			wantBody:   map[string]any{"type": "about:blank", "title": "Too Many Requests", "status": 429.0, "detail": "rate limit exceeded"},
			wantHeader: map[string]string{"Retry-After": "2"},
		},
		{
			name: "retry after rounds up to one second", p: gatewaykit.NewProblem(503, "").WithRetryAfter(10 * time.Millisecond),
			wantStatus: 503, wantHeader: map[string]string{"Retry-After": "1"},
			wantBody: map[string]any{"type": "about:blank", "title": "Service Unavailable", "status": 503.0},
		},
		{
			name:  "unauthorized with challenge and request id",
			p:     gatewaykit.NewProblem(401, "token expired").WithHeader("WWW-Authenticate", `Bearer error="invalid_token"`),
			reqID: "req-1", wantStatus: 401,
			wantBody:   map[string]any{"type": "about:blank", "title": "Unauthorized", "status": 401.0, "detail": "token expired", "request_id": "req-1"},
			wantHeader: map[string]string{"WWW-Authenticate": `Bearer error="invalid_token"`},
		},
		{
			name: "custom type, title, instance and extensions; reserved members not overridden",
			p: &gatewaykit.Problem{Type: "https://gatewaykit.dev/problems/quota", Title: "Quota", Status: 429, Instance: "/x",
				Extensions: map[string]any{"limit": "user", "status": 200, "title": "spoof"}},
			wantStatus: 429,
			wantBody:   map[string]any{"type": "https://gatewaykit.dev/problems/quota", "title": "Quota", "status": 429.0, "instance": "/x", "limit": "user"},
		},
		{
			name:       "internal error never serialized",
			p:          gatewaykit.NewProblem(502, "upstream failed").WithErr(errors.New("dial tcp 10.0.0.7:8080: connection refused")),
			wantStatus: 502,
			wantBody:   map[string]any{"type": "about:blank", "title": "Bad Gateway", "status": 502.0, "detail": "upstream failed"},
		},
		{
			name: "unmarshalable extension dropped", p: &gatewaykit.Problem{Status: 400, Extensions: map[string]any{"f": func() {}}},
			wantStatus: 400, wantBody: map[string]any{"type": "about:blank", "title": "Bad Request", "status": 400.0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.reqID != "" {
				r = r.WithContext(gatewaykit.WithRequestID(r.Context(), tt.reqID))
			}
			w := httptest.NewRecorder()
			w.Header().Set("Content-Length", "999")
			gatewaykit.WriteProblem(w, r, tt.p)
			if w.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d", w.Code, tt.wantStatus)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q", ct)
			}
			if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Cache-Control") != "no-store" {
				t.Fatal("missing nosniff/no-store")
			}
			if cl := w.Header().Get("Content-Length"); cl != itoa(w.Body.Len()) {
				t.Fatalf("content-length %s, body %d", cl, w.Body.Len())
			}
			var got map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("body not JSON: %v: %s", err, w.Body)
			}
			if len(got) != len(tt.wantBody) {
				t.Fatalf("body %v, want %v", got, tt.wantBody)
			}
			for k, v := range tt.wantBody {
				if got[k] != v {
					t.Fatalf("body[%s] = %v, want %v (body %s)", k, got[k], v, w.Body)
				}
			}
			for k, v := range tt.wantHeader {
				if w.Header().Get(k) != v {
					t.Fatalf("header %s = %q, want %q", k, w.Header().Get(k), v)
				}
			}
			if strings.Contains(w.Body.String(), "10.0.0.7") {
				t.Fatal("internal error leaked")
			}
		})
	}
}

func TestWriteProblemHEADHasNoBody(t *testing.T) {
	w := httptest.NewRecorder()
	gatewaykit.WriteProblem(w, httptest.NewRequest("HEAD", "/", nil), gatewaykit.NewProblem(404, "nope"))
	if w.Code != 404 || w.Body.Len() != 0 {
		t.Fatalf("HEAD: %d %q", w.Code, w.Body)
	}
}

func TestProblemError(t *testing.T) {
	p := gatewaykit.NewProblem(http.StatusForbidden, "role admin required").WithErr(errors.New("secret"))
	if got := p.Error(); got != "403 Forbidden: role admin required" {
		t.Fatalf("Error() = %q", got)
	}
}

func TestErrorHandlerOr(t *testing.T) {
	var nilH gatewaykit.ErrorHandler
	w := httptest.NewRecorder()
	nilH.Or()(w, httptest.NewRequest("GET", "/", nil), gatewaykit.NewProblem(418, ""))
	if w.Code != 418 {
		t.Fatal("nil handler did not default to WriteProblem")
	}
	called := false
	custom := gatewaykit.ErrorHandler(func(http.ResponseWriter, *http.Request, *gatewaykit.Problem) { called = true })
	custom.Or()(w, nil, nil)
	if !called {
		t.Fatal("custom handler not used")
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
