package guard_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatewaykit/gatewaykit/guard"
)

// echo reads the whole body and answers with its length; a read error becomes a 500.
func echo(calls *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read failed", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "read %d", len(b))
	})
}

// onlyReader hides the length of a body, so the client sends it chunked.
type onlyReader struct{ io.Reader }

func TestLimitsBody(t *testing.T) {
	var calls atomic.Int32
	l := must(guard.NewLimits(guard.MaxBodyBytes(10)))
	srv := httptest.NewServer(l.Wrap(echo(&calls)))
	defer srv.Close()

	t.Run("declared length over the limit is rejected before reading", func(t *testing.T) {
		// Headers only: the body never comes, so a guard that read it would hang until the deadline.
		resp, body := rawSend(t, srv, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
		if resp.StatusCode != 413 {
			t.Fatalf("status %d %q", resp.StatusCode, body)
		}
		problemOf(t, resp.Header, body)
		if calls.Load() != 0 {
			t.Fatal("handler ran")
		}
	})
	for _, tt := range []struct {
		name   string
		body   io.Reader
		status int
		want   string
	}{
		{"declared length within the limit", strings.NewReader("0123456789"), 200, "read 10"},
		{"chunked within the limit", onlyReader{strings.NewReader("0123456789")}, 200, "read 10"},
		{"chunked over the limit becomes 413", onlyReader{strings.NewReader("0123456789X")}, 413, "too large"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL, "text/plain", tt.body)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.want) {
				t.Fatalf("%d %q, want %d %q", resp.StatusCode, b, tt.status, tt.want)
			}
		})
	}
}

func TestLimitsBodyHandlerIgnoresError(t *testing.T) {
	l := must(guard.NewLimits(guard.MaxBodyBytes(4)))
	h := l.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Handler", "yes")
		_, _ = io.WriteString(w, "fine")
	}))
	req := httptest.NewRequest("POST", "/", onlyReader{strings.NewReader("too long")})
	req.ContentLength = -1
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 413 || strings.Contains(rec.Body.String(), "fine") {
		t.Fatalf("%d %q, want a 413 problem", rec.Code, rec.Body)
	}
}

// TestLimitsBodyBehindProxy: a ReverseProxy reads the body on its transport's goroutine and would
// answer 502; the client still gets 413.
func TestLimitsBodyBehindProxy(t *testing.T) {
	var upstreamCalls atomic.Int32
	upstream := httptest.NewServer(echo(&upstreamCalls))
	defer upstream.Close()
	u := must(url.Parse(upstream.URL))
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }, ErrorLog: nil}
	proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) }
	l := must(guard.NewLimits(guard.MaxBodyBytes(1024)))
	srv := httptest.NewServer(l.Wrap(proxy))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "text/plain", onlyReader{bytes.NewReader(make([]byte, 64<<10))})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}

func TestLimitsHeadersAndURL(t *testing.T) {
	l := must(guard.NewLimits(guard.MaxHeaders(5), guard.MaxHeaderBytes(200), guard.MaxURLLength(64)))
	srv := httptest.NewServer(l.Wrap(okHandler))
	defer srv.Close()
	var many, big []string
	for i := range 5 {
		many = append(many, fmt.Sprintf("X-H%d: v", i))
	}
	big = append(big, "X-Big: "+strings.Repeat("a", 200))
	for _, tt := range []struct {
		name   string
		target string
		extra  []string
		status int
	}{
		{"within limits", "/ok", []string{"X-A: 1"}, 200},
		// Host is not in r.Header; Connection: close is, so 5 extra lines make 6.
		{"too many header lines", "/ok", many, 431},
		{"header bytes", "/ok", big, 431},
		{"url at the limit", "/" + strings.Repeat("a", 63), nil, 200},
		{"url over the limit", "/" + strings.Repeat("a", 64), nil, 414},
		{"query counts", "/a?" + strings.Repeat("q", 64), nil, 414},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawGet(t, srv, tt.target, tt.extra...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tt.status)
			}
			if tt.status != 200 {
				problemOf(t, resp.Header, body)
			}
		})
	}
}

func TestLimitsConstruction(t *testing.T) {
	for name, opt := range map[string]guard.Option{
		"zero body":        guard.MaxBodyBytes(0),
		"negative headers": guard.MaxHeaders(-1),
		"zero bytes":       guard.MaxHeaderBytes(0),
		"zero url":         guard.MaxURLLength(0),
		"misplaced":        guard.AllowCIDRs("10.0.0.0/8"),
	} {
		if _, err := guard.NewLimits(opt); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
