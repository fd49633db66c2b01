package auth_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/auth/authtest"
)

// A gateway route that accepts a JWT from an OIDC issuer or an API key, and requires the admin
// role.
func Example() {
	idp, srv, err := authtest.NewServer("ES256") // a demo IdP on loopback (plain http)
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	jwt, err := auth.NewJWT(auth.WithOIDC(idp.URL()), auth.WithAudience("api"), auth.WithAlgorithms("ES256"),
		auth.AllowInsecureHTTP()) // only because the demo IdP is plain http
	if err != nil {
		panic(err)
	}
	defer jwt.Close()
	keys, err := auth.NewAPIKeys(auth.MemoryKeyStore())
	if err != nil {
		panic(err)
	}
	partnerKey, _, _ := keys.Create(context.Background(), auth.KeyInfo{Subject: "partner-7", Tier: "premium", Roles: []string{"admin"}})

	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := gatewaykit.IdentityFrom(r.Context())
		fmt.Fprintf(w, "%s via %s, X-User-ID=%s", id.Subject, id.Method, r.Header.Get("X-User-ID"))
	})
	authn := auth.First(jwt, keys)
	h := gatewaykit.Chain(authn.Wrap, auth.RequireRole("admin"))(upstream)

	call := func(hdr, val string) {
		r := httptest.NewRequest(http.MethodGet, "/admin", nil)
		if hdr != "" {
			r.Header.Set(hdr, val)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code == http.StatusOK {
			fmt.Println(w.Code, w.Body.String())
			return
		}
		if c := w.Header().Get("WWW-Authenticate"); c != "" {
			fmt.Println(w.Code, c)
			return
		}
		fmt.Println(w.Code)
	}
	admin, _ := idp.Mint(map[string]any{"sub": "alice", "aud": "api", "roles": []string{"admin"}})
	user, _ := idp.Mint(map[string]any{"sub": "bob", "aud": "api", "roles": []string{"user"}})
	expired, _ := idp.Mint(map[string]any{"sub": "alice", "aud": "api", "exp": time.Now().Add(-time.Hour).Unix()})

	call("Authorization", "Bearer "+admin)
	call("X-API-Key", partnerKey)
	call("Authorization", "Bearer "+user)
	call("Authorization", "Bearer "+expired)
	call("", "")
	// Output:
	// 200 alice via jwt, X-User-ID=alice
	// 200 partner-7 via apikey, X-User-ID=partner-7
	// 403
	// 401 Bearer error="invalid_token", error_description="token expired"
	// 401 Bearer
}

// Ownership: only the user named in the path (or an admin) may read it. The policy runs inside the
// ServeMux route, where the path value is set.
func ExampleRequireOwner() {
	mux := http.NewServeMux()
	mux.Handle("GET /users/{user_id}/orders", auth.RequireOwner("user_id", "admin")(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "orders of ", r.PathValue("user_id")) })))
	as := func(sub string, next http.Handler) http.Handler { // stands in for an authentication middleware
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(gatewaykit.WithIdentity(r.Context(), &gatewaykit.Identity{Subject: sub})))
		})
	}
	for _, sub := range []string{"alice", "bob"} {
		w := httptest.NewRecorder()
		as(sub, mux).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/users/alice/orders", nil))
		fmt.Println(sub, w.Code, w.Body.String()[:min(len(w.Body.String()), 15)])
	}
	// Output:
	// alice 200 orders of alice
	// bob 403 {"detail":"not
}
