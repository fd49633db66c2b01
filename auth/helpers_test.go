package auth_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/auth"
)

// recorder is a handler that records whether it was reached and with which identity and headers.
type recorder struct {
	hits    atomic.Int64
	id      atomic.Pointer[gatewaykit.Identity]
	headers atomic.Pointer[http.Header]
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.hits.Add(1)
	if id, ok := gatewaykit.IdentityFrom(r.Context()); ok {
		rec.id.Store(id)
	}
	h := r.Header.Clone()
	rec.headers.Store(&h)
	w.WriteHeader(http.StatusOK)
}

type problem struct {
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// do serves one request through h with the given headers and returns the response.
func do(t *testing.T, h http.Handler, hdr http.Header) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/api/orders", nil)
	for k, vs := range hdr {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func decodeProblem(t *testing.T, w *httptest.ResponseRecorder) problem {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != gatewaykit.ProblemContentType {
		t.Fatalf("content type %q, want problem+json; body %s", ct, w.Body)
	}
	var p problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func newJWT(t *testing.T, opts ...auth.Option) *auth.JWT {
	t.Helper()
	quiet := auth.WithLogger(slog.New(slog.DiscardHandler)) // tests that read logs pass their own
	j, err := auth.NewJWT(append([]auth.Option{quiet}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j
}

// expectRejected asserts a 401 problem of the class, with an invalid_token challenge, that does not
// echo the credential.
func expectRejected(t *testing.T, w *httptest.ResponseRecorder, status int, class error, cred string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	p := decodeProblem(t, w)
	want := strings.TrimPrefix(class.Error(), "auth: ")
	if p.Detail != want {
		t.Errorf("detail %q, want %q", p.Detail, want)
	}
	if status == http.StatusUnauthorized && class != auth.ErrNoCredentials {
		if c := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(c, `Bearer error="invalid_token"`) {
			t.Errorf("WWW-Authenticate %q", c)
		}
	}
	if cred != "" && len(cred) > 8 && strings.Contains(w.Body.String(), cred) {
		t.Error("body echoes the credential")
	}
}
