package auth_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
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

// answeringIdP is an httptest introspection endpoint that answers each token with a fixed JSON body
// ({"active":false} for unknown tokens) and counts the calls.
type answeringIdP struct {
	mu      sync.Mutex
	answers map[string]string
	calls   atomic.Int64
}

func startAnsweringIdP(t *testing.T, answers map[string]string) (*answeringIdP, string) {
	t.Helper()
	idp := &answeringIdP{answers: answers}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != "client" || secret != "secret" || r.Method != http.MethodPost {
			http.Error(w, "client authentication failed", http.StatusUnauthorized)
			return
		}
		idp.calls.Add(1)
		idp.mu.Lock()
		body, ok := idp.answers[r.PostFormValue("token")]
		idp.mu.Unlock()
		if !ok {
			body = `{"active":false}`
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return idp, srv.URL
}

// TestIntrospectionIssuerAudienceTokenType: with WithIssuer, WithAudience and WithAllowedTokenTypes
// the answer's iss (exact string), aud (string or array of strings) and token_type must match;
// missing, mismatched or mistyped members are rejected with the JWT method's classes. nil class
// means accepted.
func TestIntrospectionIssuerAudienceTokenType(t *testing.T) {
	const idpURL = "https://idp.example"
	answer := func(members string) string {
		return `{"active":true,"sub":"alice","iss":"` + idpURL + `","aud":"api","token_type":"Bearer"` + members + `}`
	}
	cases := []struct {
		name, body string
		class      error
	}{
		{"iss mismatch", answer(`,"iss":"https://evil.example"`), auth.ErrIssuer}, // index 0: reused below
		{"all match", answer(``), nil},
		{"token_type case-insensitive", answer(`,"token_type":"bearer"`), nil},
		{"aud array containing", answer(`,"aud":["other","api"]`), nil},
		{"aud array with the second audience", answer(`,"aud":["gw"]`), nil},
		{"iss with trailing slash", answer(`,"iss":"https://idp.example/"`), auth.ErrIssuer},
		{"iss other case", answer(`,"iss":"https://IDP.example"`), auth.ErrIssuer},
		{"iss missing", `{"active":true,"sub":"alice","aud":"api","token_type":"Bearer"}`, auth.ErrMissingClaim},
		{"iss null", answer(`,"iss":null`), auth.ErrMissingClaim},
		{"iss empty", answer(`,"iss":""`), auth.ErrMissingClaim},
		{"iss number", answer(`,"iss":1`), auth.ErrMalformed},
		{"iss array", answer(`,"iss":["https://idp.example"]`), auth.ErrMalformed},
		{"aud mismatch", answer(`,"aud":"other"`), auth.ErrAudience},
		{"aud array not containing", answer(`,"aud":["other","API"]`), auth.ErrAudience},
		{"aud missing", `{"active":true,"sub":"alice","iss":"` + idpURL + `","token_type":"Bearer"}`, auth.ErrMissingClaim},
		{"aud empty array", answer(`,"aud":[]`), auth.ErrMissingClaim},
		{"aud empty string", answer(`,"aud":""`), auth.ErrMissingClaim},
		{"aud number", answer(`,"aud":42`), auth.ErrMalformed},
		{"aud object", answer(`,"aud":{"api":true}`), auth.ErrMalformed},
		{"aud array with a number", answer(`,"aud":["api",1]`), auth.ErrMalformed},
		{"token_type other", answer(`,"token_type":"DPoP"`), auth.ErrTokenType},
		{"token_type missing", `{"active":true,"sub":"alice","iss":"` + idpURL + `","aud":"api"}`, auth.ErrTokenType},
		{"token_type number", answer(`,"token_type":1`), auth.ErrMalformed},
		{"inactive with the right iss and aud", `{"active":false,"iss":"` + idpURL + `","aud":"api"}`, auth.ErrInvalidCredential},
	}
	answers := map[string]string{}
	for i, tc := range cases {
		answers["opaque-"+strconv.Itoa(i)] = tc.body
	}
	idp, url := startAnsweringIdP(t, answers)
	clock := newFakeClock()
	in := newIntrospection(t, url, auth.WithIssuer(idpURL), auth.WithAudience("api", "gw"),
		auth.WithAllowedTokenTypes("Bearer"), auth.WithClock(clock.Now), auth.WithNegativeTTL(5*time.Second))
	rec := &recorder{}
	h := in.Wrap(rec)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := "opaque-" + strconv.Itoa(i)
			before, hits := idp.calls.Load(), rec.hits.Load()
			// twice: the second answer comes from the positive or negative cache, with the same class
			for range 2 {
				w := do(t, h, bearer(tok))
				if tc.class == nil {
					if w.Code != http.StatusOK {
						t.Fatalf("status %d %s, want accepted", w.Code, w.Body)
					}
					continue
				}
				expectRejected(t, w, http.StatusUnauthorized, tc.class, tok)
			}
			if n := idp.calls.Load() - before; n != 1 {
				t.Fatalf("%d introspection calls, want 1 (the repeat is cached)", n)
			}
			if want := map[bool]int64{true: 2, false: 0}[tc.class == nil]; rec.hits.Load()-hits != want {
				t.Fatalf("handler reached %d times, want %d", rec.hits.Load()-hits, want)
			}
		})
	}
	// a negative entry lives for the negative TTL, then the endpoint is asked again
	tok := "opaque-0" // iss mismatch
	before := idp.calls.Load()
	clock.Advance(6 * time.Second)
	expectRejected(t, do(t, h, bearer(tok)), http.StatusUnauthorized, auth.ErrIssuer, tok)
	if n := idp.calls.Load() - before; n != 1 {
		t.Fatalf("%d calls after the negative TTL, want 1", n)
	}
}

// TestIntrospectionChecksOnlyWhatIsConfigured: without WithIssuer, WithAudience and
// WithAllowedTokenTypes the answer's iss, aud and token_type are not checked (the default is
// unchanged); with only WithIssuer, aud is not checked, and the reverse.
func TestIntrospectionChecksOnlyWhatIsConfigured(t *testing.T) {
	body := `{"active":true,"sub":"alice","iss":"https://other.example","aud":7,"token_type":3}`
	_, url := startAnsweringIdP(t, map[string]string{"opaque-x": body,
		"opaque-iss-ok": `{"active":true,"sub":"alice","iss":"https://idp.example","aud":"elsewhere"}`,
		"opaque-aud-ok": `{"active":true,"sub":"alice","aud":["api"]}`})
	for _, tc := range []struct {
		name  string
		opts  []auth.Option
		tok   string
		class error
	}{
		{"nothing configured", nil, "opaque-x", nil},
		{"issuer only", []auth.Option{auth.WithIssuer("https://idp.example")}, "opaque-iss-ok", nil},
		{"audience only", []auth.Option{auth.WithAudience("api")}, "opaque-aud-ok", nil},
		{"issuer only, aud ignored but iss checked", []auth.Option{auth.WithIssuer("https://idp.example")}, "opaque-aud-ok", auth.ErrMissingClaim},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newIntrospection(t, url, tc.opts...)
			id, err := in.Authenticate(reqWith(bearer(tc.tok)))
			switch {
			case tc.class == nil && (err != nil || id.Subject != "alice"):
				t.Fatalf("rejected: %v", err)
			case tc.class != nil && !errors.Is(err, tc.class):
				t.Fatalf("error %v, want %v", err, tc.class)
			}
		})
	}
}

// TestIntrospectionNotYetValidNotCached: a rejection that time can lift (nbf in the future) is not
// cached negatively; an expired token's rejection is.
func TestIntrospectionNotYetValidNotCached(t *testing.T) {
	clock := newFakeClock()
	now := clock.Now().Unix()
	idp, url := startAnsweringIdP(t, map[string]string{
		"opaque-nbf": `{"active":true,"sub":"alice","nbf":` + strconv.FormatInt(now+3, 10) + `}`,
		"opaque-exp": `{"active":true,"sub":"alice","exp":` + strconv.FormatInt(now-1, 10) + `}`,
	})
	in := newIntrospection(t, url, auth.WithClock(clock.Now), auth.WithNegativeTTL(time.Minute))
	if _, err := in.Authenticate(reqWith(bearer("opaque-nbf"))); !errors.Is(err, auth.ErrNotYetValid) {
		t.Fatalf("nbf in the future: %v", err)
	}
	clock.Advance(4 * time.Second)
	if id, err := in.Authenticate(reqWith(bearer("opaque-nbf"))); err != nil || id.Subject != "alice" {
		t.Fatalf("once valid: %v", err)
	}
	before := idp.calls.Load()
	for range 2 {
		if _, err := in.Authenticate(reqWith(bearer("opaque-exp"))); !errors.Is(err, auth.ErrExpired) {
			t.Fatalf("expired: %v", err)
		}
	}
	if n := idp.calls.Load() - before; n != 1 {
		t.Fatalf("%d calls for an expired token, want 1", n)
	}
}

// TestIntrospectionIssuerAudienceWithAuthtest: authtest's introspection answers carry the issuer's
// URL as iss and the minted aud.
func TestIntrospectionIssuerAudienceWithAuthtest(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	in := newIntrospection(t, iss.IntrospectionURL(), auth.WithIssuer(iss.URL()), auth.WithAudience("api"))
	for _, tc := range []struct {
		claims map[string]any
		class  error
	}{
		{map[string]any{"sub": "alice", "aud": "api"}, nil},
		{map[string]any{"sub": "alice", "aud": []string{"web", "api"}}, nil},
		{map[string]any{"sub": "alice", "aud": "web"}, auth.ErrAudience},
		{map[string]any{"sub": "alice"}, auth.ErrMissingClaim},
		{map[string]any{"sub": "alice", "aud": "api", "iss": "https://evil.example"}, auth.ErrIssuer},
		{map[string]any{"sub": "alice", "aud": "api", "iss": nil}, auth.ErrMissingClaim},
	} {
		id, err := in.Authenticate(reqWith(bearer(iss.MintOpaque(tc.claims))))
		switch {
		case tc.class == nil && (err != nil || id.Subject != "alice"):
			t.Errorf("%v rejected: %v", tc.claims, err)
		case tc.class != nil && !errors.Is(err, tc.class):
			t.Errorf("%v: error %v, want %v", tc.claims, err, tc.class)
		}
	}
}

func TestWithAllowedTokenTypesValidation(t *testing.T) {
	for name, types := range map[string][]string{"none": nil, "empty": {""}, "space": {"Bearer x"}, "control": {"Bearer\n"}} {
		if in, err := auth.NewIntrospection("https://idp/introspect", auth.WithClientCredentials("a", "b"),
			auth.WithAllowedTokenTypes(types...)); err == nil {
			_ = in.Close()
			t.Errorf("%s: WithAllowedTokenTypes(%q) accepted", name, types)
		}
	}
	for name, o := range map[string]auth.Option{"empty issuer": auth.WithIssuer(""), "no audience": auth.WithAudience(),
		"empty audience": auth.WithAudience("api", "")} {
		if in, err := auth.NewIntrospection("https://idp/introspect", auth.WithClientCredentials("a", "b"), o); err == nil {
			_ = in.Close()
			t.Errorf("%s accepted", name)
		}
	}
}
