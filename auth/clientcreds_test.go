package auth_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/auth"
)

func TestClientCredentialsCachesToken(t *testing.T) {
	o := startOP(t, "https://unused.example/cb", time.Now)
	var mu sync.Mutex
	seen := map[string]int{}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Authorization")]++
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(upstream.Close)

	// The example provider's service user "sid1" may use the client credentials grant.
	cc, err := auth.NewClientCredentials(o.issuer+"/oauth/token", "sid1", "verysecret", auth.AllowInsecureTokenURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	client := cc.Client(nil)
	t.Cleanup(client.CloseIdleConnections)

	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, upstream.URL, nil)
			req.Header.Set("Authorization", "Bearer client-supplied")
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	if got := o.grantCount("client_credentials"); got != 1 {
		t.Fatalf("token requests for 20 calls: %d, want 1 (cached until expiry)", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 {
		t.Fatalf("upstream saw %d distinct Authorization headers: %v", len(seen), seen)
	}
	for h, n := range seen {
		if !strings.HasPrefix(h, "Bearer ") || h == "Bearer client-supplied" || n != 20 {
			t.Fatalf("upstream saw %q %d times", h, n)
		}
	}
}

func TestClientCredentialsFailsClosed(t *testing.T) {
	o := startOP(t, "https://unused.example/cb", time.Now)
	cc, err := auth.NewClientCredentials(o.issuer+"/oauth/token", "sid1", "wrong", auth.AllowInsecureTokenURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	var called atomic.Bool
	upstream := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called.Store(true) }))
	t.Cleanup(upstream.Close)
	client := cc.Client(nil)
	t.Cleanup(client.CloseIdleConnections)
	if resp, err := client.Get(upstream.URL); err == nil {
		resp.Body.Close()
		t.Fatal("request sent without a token")
	}
	if called.Load() {
		t.Fatal("upstream reached without a token")
	}
}

func TestNewClientCredentialsValidates(t *testing.T) {
	for name, f := range map[string]func() error{
		"http":      func() error { _, err := auth.NewClientCredentials("http://idp/token", "a", "b"); return err },
		"no id":     func() error { _, err := auth.NewClientCredentials("https://idp/token", "", "b"); return err },
		"no secret": func() error { _, err := auth.NewClientCredentials("https://idp/token", "a", ""); return err },
		"scope": func() error {
			_, err := auth.NewClientCredentials("https://idp/token", "a", "b", auth.WithTokenScopes("a b"))
			return err
		},
		"nil client": func() error {
			_, err := auth.NewClientCredentials("https://idp/token", "a", "b", auth.WithTokenHTTPClient(nil))
			return err
		},
	} {
		if err := f(); err == nil || !strings.HasPrefix(err.Error(), "auth: ") {
			t.Errorf("%s: error %v", name, err)
		}
	}
}

// The token is reused until shortly (10 s, x/oauth2's margin) before it expires, then fetched anew.
func TestClientCredentialsRefetchesAfterExpiry(t *testing.T) {
	var fetches atomic.Int32
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := fetches.Add(1)
		if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
			http.Error(w, "bad grant", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		// 12 s lifetime: usable for about 2 s given the 10 s early-expiry margin.
		_, _ = io.WriteString(w, `{"access_token":"t`+string(rune('0'+n))+`","token_type":"Bearer","expires_in":12}`)
	}))
	t.Cleanup(tokens.Close)
	cc, err := auth.NewClientCredentials(tokens.URL, "gw", "secret", auth.AllowInsecureTokenURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	first, err := cc.Token()
	if err != nil {
		t.Fatal(err)
	}
	again, err := cc.Token()
	if err != nil || again.AccessToken != first.AccessToken || fetches.Load() != 1 {
		t.Fatalf("second call within the lifetime: %v, %d fetches", err, fetches.Load())
	}
	time.Sleep(2500 * time.Millisecond) // real time: x/oauth2 has no injectable clock
	later, err := cc.Token()
	if err != nil || later.AccessToken == first.AccessToken || fetches.Load() != 2 {
		t.Fatalf("after expiry: %v, token %q, %d fetches", err, later.AccessToken, fetches.Load())
	}
}
