package bff_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/bff"
)

var fixed = time.Date(2026, 11, 27, 1, 2, 3, 4, time.UTC)

type seenRequest struct {
	header http.Header
	body   string
	length int64
}

func recordUpstream(seen *seenRequest) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*seen = seenRequest{header: r.Header.Clone(), body: string(b), length: r.ContentLength}
		w.Header().Set("X-Upstream-Version", "3")
		w.Header().Set("Server", "orders/1.2")
		w.WriteHeader(http.StatusCreated)
	})
}

func enrichOrders(t *testing.T, extra ...bff.Option) http.Handler {
	t.Helper()
	opts := append([]bff.Option{
		bff.Enrich(),
		bff.EnrichBody("user_id", bff.Subject()),
		bff.EnrichBody("requested_at", bff.Timestamp()),
		bff.EnrichBody("request_id", bff.RequestID()),
		bff.WithClock(func() time.Time { return fixed }),
		bff.WithMaxRequestBody(1024),
	}, extra...)
	b := newBFF(t, opts...)
	return b.Wrap(recordUpstream(new(seenRequest)))
}

func orderRequest(body string, id *gatewaykit.Identity) *http.Request {
	r := httptest.NewRequest("POST", "/api/orders", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-User-ID", "victim") // spoofed
	r.Header.Set("X-Request-Timestamp", "1999-01-01T00:00:00Z")
	ctx := gatewaykit.WithRequestID(r.Context(), "req-42")
	if id != nil {
		ctx = gatewaykit.WithIdentity(ctx, id)
	}
	return r.WithContext(ctx)
}

func TestEnrichmentOverwritesSpoofedUserID(t *testing.T) {
	var seen seenRequest
	b := newBFF(t, bff.Enrich(), bff.EnrichBody("user_id", bff.Subject()), bff.EnrichBody("requested_at", bff.Timestamp()),
		bff.EnrichBody("request_id", bff.RequestID()), bff.WithClock(func() time.Time { return fixed }))
	h := b.Wrap(recordUpstream(&seen))
	body := `{"item":"book","qty":2,"user_id":"victim","user\u005fid":"victim2","User_ID":"victim3"}`
	w := serve(t, h, orderRequest(body, &gatewaykit.Identity{Subject: "alice"}))
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	if got := seen.header.Get("X-User-ID"); got != "alice" {
		t.Fatalf("X-User-ID = %q", got)
	}
	if got := seen.header.Get("X-Request-Timestamp"); got != "2026-11-27T01:02:03.000000004Z" {
		t.Fatalf("X-Request-Timestamp = %q", got)
	}
	if got := seen.header.Get("X-Request-ID"); got != "req-42" {
		t.Fatalf("X-Request-ID = %q", got)
	}
	want := `{"item":"book","qty":2,"user_id":"alice","requested_at":"2026-11-27T01:02:03.000000004Z","request_id":"req-42"}`
	if seen.body != want {
		t.Fatalf("upstream body %s\nwant          %s", seen.body, want)
	}
	if seen.length != int64(len(want)) || seen.header.Get("Content-Length") != strconv.Itoa(len(want)) {
		t.Fatalf("content length %d / %q, body is %d bytes", seen.length, seen.header.Get("Content-Length"), len(want))
	}
	var decoded map[string]any
	if err := json.Unmarshal([]byte(seen.body), &decoded); err != nil || decoded["user_id"] != "alice" {
		t.Fatalf("decoded %v, %v", decoded, err)
	}
}

func TestEnrichmentAnonymousRemovesClientValues(t *testing.T) {
	var seen seenRequest
	h := newBFF(t, bff.Enrich(), bff.EnrichBody("user_id", bff.Subject())).Wrap(recordUpstream(&seen))
	serve(t, h, orderRequest(`{"user_id":"victim","item":"x"}`, nil))
	if _, ok := seen.header["X-User-Id"]; ok {
		t.Fatalf("spoofed X-User-ID forwarded for an anonymous caller: %v", seen.header)
	}
	if seen.body != `{"item":"x"}` {
		t.Fatalf("body %s, want the spoofed user_id removed", seen.body)
	}
}

func TestEnrichmentRejections(t *testing.T) {
	alice := &gatewaykit.Identity{Subject: "alice"}
	tests := []struct {
		name     string
		body     string
		ctype    string
		encoding string
		status   int
	}{
		{"malformed", `{"item":`, "application/json", "", http.StatusBadRequest},
		{"array", `[{"user_id":"victim"}]`, "application/json", "", http.StatusBadRequest},
		{"too large", `{"pad":"` + strings.Repeat("x", 2000) + `"}`, "application/json", "", http.StatusRequestEntityTooLarge},
		{"gzip", "\x1f\x8b", "application/json", "gzip", http.StatusUnsupportedMediaType},
		{"empty body", ``, "application/json; charset=utf-8", "", http.StatusCreated},
		{"vendor json", `{"a":1}`, "application/vnd.api+json", "", http.StatusCreated},
		{"form refused", `user_id=victim`, "application/x-www-form-urlencoded", "", http.StatusUnsupportedMediaType},
		{"no content type refused", `{"user_id":"victim"}`, "", "", http.StatusUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := enrichOrders(t)
			r := orderRequest(tt.body, alice)
			r.Header.Set("Content-Type", tt.ctype)
			if tt.encoding != "" {
				r.Header.Set("Content-Encoding", tt.encoding)
			}
			w := serve(t, h, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body.String())
			}
			if tt.status >= 400 && (w.Header().Get("Content-Type") != gatewaykit.ProblemContentType || strings.Contains(w.Body.String(), "victim")) {
				t.Fatalf("not a clean problem: %s", w.Body.String())
			}
		})
	}
}

func TestHeaderTransformations(t *testing.T) {
	var seen seenRequest
	h := newBFF(t,
		bff.SetRequestHeader("X-Gateway", "gatewaykit"),
		bff.RemoveRequestHeader("Cookie"),
		bff.RenameRequestHeader("X-Legacy-Token", "X-Token"),
		bff.SetResponseHeader("X-Frame-Options", "DENY"),
		bff.RemoveResponseHeader("Server"),
		bff.RenameResponseHeader("X-Upstream-Version", "X-API-Version"),
	).Wrap(recordUpstream(&seen))
	r := httptest.NewRequest("GET", "/api/orders", nil)
	r.Header.Set("Cookie", "session=1")
	r.Header.Set("X-Legacy-Token", "t")
	r.Header.Set("X-Gateway", "spoofed")
	w := serve(t, h, r)
	if seen.header.Get("X-Gateway") != "gatewaykit" || seen.header.Get("Cookie") != "" || seen.header.Get("X-Token") != "t" || seen.header.Get("X-Legacy-Token") != "" {
		t.Fatalf("upstream headers %v", seen.header)
	}
	if r.Header.Get("Cookie") != "session=1" {
		t.Fatal("the caller's request headers were modified")
	}
	if w.Header().Get("X-Frame-Options") != "DENY" || w.Header().Get("Server") != "" || w.Header().Get("X-API-Version") != "3" || w.Header().Get("X-Upstream-Version") != "" {
		t.Fatalf("response headers %v", w.Header())
	}
}
