package gatewaykit_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatewaykit/gatewaykit"
)

func TestRequestID(t *testing.T) {
	tests := []struct {
		name     string
		incoming []string
		keep     bool
	}{
		{"absent: generated", nil, false},
		{"well-formed kept", []string{"abc-123_DEF.4:5/6+7=8"}, true},
		{"uuid kept", []string{"0f8fad5b-d9cb-469f-a165-70867728950e"}, true},
		{"empty replaced", []string{""}, false},
		{"space replaced", []string{"abc def"}, false},
		{"CRLF replaced", []string{"abc\r\nX-Evil: 1"}, false},
		{"quote replaced", []string{`abc"`}, false},
		{"non-ascii replaced", []string{"ab\u00e9"}, false},
		{"too long replaced", []string{strings.Repeat("a", 129)}, false},
		{"max length kept", []string{strings.Repeat("a", 128)}, true},
		{"duplicated header replaced", []string{"a", "b"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctxID, upstreamID string
			h := gatewaykit.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctxID = gatewaykit.RequestIDFrom(r.Context())
				upstreamID = strings.Join(r.Header.Values("X-Request-ID"), ",")
			}))
			r := httptest.NewRequest("GET", "/", nil)
			for _, v := range tt.incoming {
				r.Header.Add("X-Request-ID", v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			respID := w.Header().Get("X-Request-ID")
			if ctxID == "" || ctxID != upstreamID || ctxID != respID {
				t.Fatalf("ids differ: ctx %q upstream %q response %q", ctxID, upstreamID, respID)
			}
			if tt.keep && ctxID != tt.incoming[0] {
				t.Fatalf("incoming %q not kept: %q", tt.incoming[0], ctxID)
			}
			if !tt.keep {
				if len(ctxID) != 32 || !gatewaykit.ValidRequestID(ctxID, 32) {
					t.Fatalf("generated id %q malformed", ctxID)
				}
				for _, v := range tt.incoming {
					if v == ctxID {
						t.Fatal("bad incoming id kept")
					}
				}
			}
		})
	}
}

func TestRequestIDOptions(t *testing.T) {
	mw, err := gatewaykit.NewRequestID(gatewaykit.RequestIDHeaderName("x-correlation-id"), gatewaykit.RequestIDMaxLen(4),
		gatewaykit.RequestIDGenerator(func() string { return "gen" }))
	if err != nil {
		t.Fatal(err)
	}
	var got string
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = gatewaykit.RequestIDFrom(r.Context()) }))
	for in, want := range map[string]string{"abcd": "abcd", "abcde": "gen"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Correlation-Id", in)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if got != want || w.Header().Get("X-Correlation-ID") != want {
			t.Fatalf("in %q: got %q, header %q, want %q", in, got, w.Header().Get("X-Correlation-ID"), want)
		}
	}

	ignore, err := gatewaykit.NewRequestID(gatewaykit.RequestIDIgnoreIncoming())
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Request-ID", "client-chosen")
	ignore(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = gatewaykit.RequestIDFrom(r.Context()) })).ServeHTTP(httptest.NewRecorder(), r)
	if got == "client-chosen" {
		t.Fatal("incoming id kept despite RequestIDIgnoreIncoming")
	}

	for _, o := range []gatewaykit.RequestIDOption{
		gatewaykit.RequestIDHeaderName(""), gatewaykit.RequestIDHeaderName("bad header"),
		gatewaykit.RequestIDMaxLen(0), gatewaykit.RequestIDMaxLen(5000), gatewaykit.RequestIDGenerator(nil),
	} {
		if _, err := gatewaykit.NewRequestID(o); err == nil {
			t.Error("bad option accepted")
		}
	}
}

func TestRandomIDsDiffer(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := gatewaykit.NewRandomID()
		if seen[id] {
			t.Fatal("duplicate id")
		}
		seen[id] = true
	}
}

func BenchmarkRequestID(b *testing.B) {
	h := gatewaykit.RequestID(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	b.Run("generated", func(b *testing.B) {
		r := httptest.NewRequest("GET", "/", nil)
		w := httptest.NewRecorder()
		b.ReportAllocs()
		for b.Loop() {
			delete(r.Header, "X-Request-Id")
			h.ServeHTTP(w, r)
		}
	})
	b.Run("kept", func(b *testing.B) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Request-ID", "0f8fad5b-d9cb-469f-a165-70867728950e")
		w := httptest.NewRecorder()
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(w, r)
		}
	})
}

func BenchmarkClientIP(b *testing.B) {
	res, _ := gatewaykit.NewClientIPResolver("10.0.0.0/8")
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.1.1.1:4444"
	r.Header.Set("X-Forwarded-For", "198.51.100.4, 10.2.2.2")
	b.ReportAllocs()
	for b.Loop() {
		_ = res.ClientIP(r)
	}
}
