package auth_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/auth/authtest"
)

// ExampleNewLogin wires OIDC login into a gateway: the login, callback and logout endpoints,
// browser routes that redirect to the login, and API routes that answer 401 and forward the
// session's access token upstream.
func ExampleNewLogin() {
	// A stand-in provider: authtest's issuer (discovery, JWKS) plus authorization and token
	// endpoints in its discovery document.
	var idp *authtest.Issuer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == authtest.DiscoveryPath {
			_ = json.NewEncoder(w).Encode(map[string]any{
				"issuer": idp.URL(), "jwks_uri": idp.JWKSURL(),
				"authorization_endpoint": idp.URL() + "/authorize", "token_endpoint": idp.URL() + "/token",
			})
			return
		}
		idp.ServeHTTP(w, r)
	}))
	defer srv.Close()
	idp, _ = authtest.New(srv.URL, "RS256")

	key := sha256.Sum256([]byte("load me from a secret store")) // 32 bytes: AES-256-GCM
	login, err := auth.NewLogin(srv.URL, "gateway", "https://gw.example/auth/callback",
		auth.WithClientSecret("secret"),
		auth.WithSessionKeys(key[:]),
		auth.LoginVerifierOptions(auth.AllowInsecureHTTP()), // a loopback demo provider
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer login.Close()

	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "app") })
	mux := http.NewServeMux()
	mux.HandleFunc("GET /auth/login", login.ServeLogin)
	mux.HandleFunc("GET /auth/callback", login.ServeCallback)
	mux.HandleFunc("POST /auth/logout", login.ServeLogout)
	mux.Handle("/app/", login.Wrap(app))
	mux.Handle("/api/", login.WrapAPI(auth.ForwardSessionToken(app)))

	do := func(path, accept string) *http.Response {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Header.Set("Accept", accept)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w.Result()
	}
	resp := do("/app/orders", "text/html")
	fmt.Println("browser:", resp.StatusCode, resp.Header.Get("Location"))
	resp = do("/api/orders", "application/json")
	fmt.Println("api:", resp.StatusCode, resp.Header.Get("Content-Type"))
	resp = do("/auth/login?return_to=/app/orders", "text/html")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	fmt.Println("login:", resp.StatusCode, loc.Path, q.Get("code_challenge_method"), q.Get("nonce") != "", q.Get("state") != "")
	// Output:
	// browser: 302 /auth/login?return_to=%2Fapp%2Forders
	// api: 401 application/problem+json
	// login: 302 /authorize S256 true true
}

// ExampleNewClientCredentials calls an upstream with the gateway's own token from the client
// credentials grant; the token is fetched once and reused until shortly before it expires.
func ExampleNewClientCredentials() {
	fetches := 0
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches++
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"gw-token","token_type":"Bearer","expires_in":3600}`)
	}))
	defer tokens.Close()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Header.Get("Authorization"))
	}))
	defer upstream.Close()

	cc, err := auth.NewClientCredentials(tokens.URL, "gateway", "secret",
		auth.WithTokenScopes("orders.read"), auth.AllowInsecureTokenURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cc.Close()
	client := cc.Client(nil)
	for range 3 {
		resp, err := client.Get(upstream.URL)
		if err != nil {
			fmt.Println(err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(b))
	}
	fmt.Println("token requests:", fetches)
	// Output:
	// Bearer gw-token
	// Bearer gw-token
	// Bearer gw-token
	// token requests: 1
}
