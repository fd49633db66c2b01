package auth_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/auth/authtest"
)

func newIntrospection(t *testing.T, endpoint string, opts ...auth.Option) *auth.Introspection {
	t.Helper()
	in, err := auth.NewIntrospection(endpoint, append([]auth.Option{auth.AllowInsecureHTTP(),
		auth.WithClientCredentials("client", "secret")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close() })
	return in
}

func TestIntrospectionActiveInactiveAndCaching(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	clock := newFakeClock()
	in := newIntrospection(t, iss.IntrospectionURL(), auth.WithClock(clock.Now), auth.WithNegativeTTL(5*time.Second))
	rec := &recorder{}
	h := in.Wrap(rec)
	tok := iss.MintOpaque(map[string]any{"sub": "alice", "scope": "a b", "roles": []string{"admin"},
		"exp": clock.Now().Add(time.Minute).Unix()})
	for range 3 {
		if w := do(t, h, bearer(tok)); w.Code != http.StatusOK {
			t.Fatalf("active token: %d %s", w.Code, w.Body)
		}
	}
	if id := rec.id.Load(); id.Subject != "alice" || id.Method != "introspection" || !id.HasScope("b") || !id.HasRole("admin") {
		t.Fatalf("identity %+v", id)
	}
	if n := iss.Introspections(); n != 1 {
		t.Fatalf("%d introspections for one token, want 1 (cached)", n)
	}
	// cached until exp, not beyond
	clock.Advance(2 * time.Minute)
	if w := do(t, h, bearer(tok)); w.Code != http.StatusUnauthorized {
		t.Fatalf("after exp: %d", w.Code)
	}
	// inactive: rejected, cached briefly
	iss.RevokeOpaque(tok)
	unknown := "opaque-unknown-token"
	before := iss.Introspections()
	for range 3 {
		expectRejected(t, do(t, h, bearer(unknown)), http.StatusUnauthorized, auth.ErrInvalidCredential, unknown)
	}
	if n := iss.Introspections() - before; n != 1 {
		t.Fatalf("%d introspections for an inactive token, want 1 (negative cache)", n)
	}
	clock.Advance(6 * time.Second)
	_ = do(t, h, bearer(unknown))
	if n := iss.Introspections() - before; n != 2 {
		t.Fatalf("negative entry outlived its TTL: %d calls", n)
	}
	if rec.hits.Load() != 3 {
		t.Fatalf("handler reached %d times, want 3", rec.hits.Load())
	}
}

// TestIntrospectionRejectsBadDates: an active answer whose exp/nbf is not a number or lies beyond
// year 9999, or whose sub is not a string, is rejected (nbf=1e300 used to overflow into the distant past and pass; a string exp
// used to be ignored, caching the token for the maximum TTL).
func TestIntrospectionRejectsBadDates(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	in := newIntrospection(t, iss.IntrospectionURL())
	rec := &recorder{}
	h := in.Wrap(rec)
	for name, claims := range map[string]map[string]any{
		"nbf 1e300":  {"sub": "a", "nbf": 1e300},
		"exp 1e15":   {"sub": "a", "exp": 1e15},
		"exp string": {"sub": "a", "exp": "4102444800"},
		// a present sub of the wrong type must not be replaced by client_id (the client's identity)
		"sub number": {"sub": 42, "client_id": "backoffice"},
	} {
		t.Run(name, func(t *testing.T) {
			tok := iss.MintOpaque(claims)
			expectRejected(t, do(t, h, bearer(tok)), http.StatusUnauthorized, auth.ErrMalformed, tok)
		})
	}
	if rec.hits.Load() != 0 {
		t.Fatal("a token with a bad date reached the handler")
	}
}

func TestIntrospectionFailsClosed(t *testing.T) {
	var calls atomic.Int64
	mode := atomic.Value{}
	mode.Store("500")
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_ = r.ParseForm() // consume the body so a client disconnect cancels r.Context()
		switch mode.Load().(string) {
		case "500":
			http.Error(w, "boom: internal stack trace", http.StatusInternalServerError)
		case "slow":
			select {
			case <-time.After(10 * time.Second):
			case <-r.Context().Done():
			}
		case "garbage":
			_, _ = w.Write([]byte("<html>not json"))
		case "active-string":
			_, _ = w.Write([]byte(`{"active":"true","sub":"x"}`))
		}
	}))
	t.Cleanup(idp.Close)
	in := newIntrospection(t, idp.URL, auth.WithFetchTimeout(200*time.Millisecond))
	rec := &recorder{}
	h := in.Wrap(rec)
	for _, m := range []string{"500", "slow", "garbage"} {
		mode.Store(m)
		w := do(t, h, bearer("opaque-"+m))
		expectRejected(t, w, http.StatusServiceUnavailable, auth.ErrUnavailable, "opaque-"+m)
		if got := w.Body.String(); strings.Contains(got, "boom") || strings.Contains(got, "html") {
			t.Errorf("%s: body leaks the IdP answer: %s", m, got)
		}
	}
	mode.Store("active-string")
	expectRejected(t, do(t, h, bearer("opaque-x")), http.StatusUnauthorized, auth.ErrInvalidCredential, "")
	if rec.hits.Load() != 0 {
		t.Fatal("a request passed while the IdP failed")
	}
}

func TestIntrospectionClientAuthentication(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	iss.SetClient("gateway", "right")
	in := newIntrospection(t, iss.IntrospectionURL(), auth.WithClientCredentials("gateway", "wrong"))
	_, err := in.Authenticate(reqWith(bearer(iss.MintOpaque(map[string]any{"sub": "a"}))))
	if !errors.Is(err, auth.ErrUnavailable) {
		t.Fatalf("rejected client credentials: %v", err)
	}
}

func TestNewIntrospectionValidation(t *testing.T) {
	cases := map[string]struct {
		url  string
		opts []auth.Option
	}{
		"http":           {"http://idp/introspect", []auth.Option{auth.WithClientCredentials("a", "b")}},
		"no credentials": {"https://idp/introspect", nil},
		"JWT option":     {"https://idp/introspect", []auth.Option{auth.WithClientCredentials("a", "b"), auth.WithAlgorithms("ES256")}},
		"no host":        {"https:///introspect", []auth.Option{auth.WithClientCredentials("a", "b")}},
	}
	for name, tc := range cases {
		if in, err := auth.NewIntrospection(tc.url, tc.opts...); err == nil {
			_ = in.Close()
			t.Errorf("%s accepted", name)
		}
	}
}

func TestIntrospectionConcurrentMissesShareOneCall(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	in := newIntrospection(t, iss.IntrospectionURL())
	tok := iss.MintOpaque(map[string]any{"sub": "alice"})
	iss.SetDelay(100 * time.Millisecond)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 200 {
		wg.Go(func() {
			if id, err := in.Authenticate(reqWith(bearer(tok))); err != nil || id.Subject != "alice" {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d failures", failed.Load())
	}
	if n := iss.Introspections(); n != 1 {
		t.Fatalf("%d introspection calls for one token, want 1", n)
	}
}
