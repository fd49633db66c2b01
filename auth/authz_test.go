package auth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/auth"
)

// withID injects an identity as an authentication middleware would.
func withID(id *gatewaykit.Identity, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id != nil {
			r = r.WithContext(gatewaykit.WithIdentity(r.Context(), id))
		}
		next.ServeHTTP(w, r)
	})
}

func TestAuthorization(t *testing.T) {
	alice := &gatewaykit.Identity{Subject: "alice", Roles: []string{"user"}, Scopes: []string{"orders:read"}, Tier: "free"}
	admin := &gatewaykit.Identity{Subject: "root", Roles: []string{"admin"}, Scopes: []string{"orders:read", "orders:write"}}
	premium := auth.Policy(func(id *gatewaykit.Identity, r *http.Request) bool {
		return id.Tier == "premium" && r.Method == http.MethodGet
	})
	cases := []struct {
		name    string
		mw      gatewaykit.Middleware
		pattern string
		path    string
		id      *gatewaykit.Identity
		want    int
	}{
		{"role ok", auth.RequireRole("admin", "ops"), "/x", "/x", admin, 200},
		{"role missing", auth.RequireRole("admin"), "/x", "/x", alice, 403},
		{"anonymous", auth.RequireRole("admin"), "/x", "/x", nil, 401},
		{"anonymous identity", auth.RequireRole("admin"), "/x", "/x", &gatewaykit.Identity{Roles: []string{"admin"}}, 401},
		{"scope ok", auth.RequireScope("orders:read"), "/x", "/x", alice, 200},
		{"scopes all needed", auth.RequireScope("orders:read", "orders:write"), "/x", "/x", alice, 403},
		{"any", auth.RequireAny(auth.AnyRole("admin"), auth.AllScopes("orders:read")), "/x", "/x", alice, 200},
		{"any none", auth.RequireAny(auth.AnyRole("admin"), auth.AllScopes("orders:write")), "/x", "/x", alice, 403},
		{"any empty", auth.RequireAny(), "/x", "/x", admin, 403},
		{"all", auth.RequireAll(auth.AnyRole("admin"), auth.AllScopes("orders:write")), "/x", "/x", admin, 200},
		{"all one fails", auth.RequireAll(auth.AnyRole("user"), auth.AllScopes("orders:write")), "/x", "/x", alice, 403},
		{"abac refuses", auth.Require(premium), "/x", "/x", alice, 403},
		{"abac allows", auth.Require(premium), "/x", "/x", &gatewaykit.Identity{Subject: "p", Tier: "premium"}, 200},
		{"nil policy", auth.Require(nil), "/x", "/x", admin, 403},
		{"owner", auth.RequireOwner("user_id", "admin"), "GET /users/{user_id}/orders", "/users/alice/orders", alice, 200},
		{"not owner", auth.RequireOwner("user_id", "admin"), "GET /users/{user_id}/orders", "/users/bob/orders", alice, 403},
		{"admin bypass", auth.RequireOwner("user_id", "admin"), "GET /users/{user_id}/orders", "/users/bob/orders", admin, 200},
		{"encoded subject", auth.RequireOwner("user_id"), "GET /users/{user_id}", "/users/al%69ce", alice, 200},
		{"missing path value", auth.RequireOwner("user_id"), "GET /users/", "/users/alice", alice, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reached := false
			mux := http.NewServeMux()
			mux.Handle(tc.pattern, tc.mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true })))
			w := httptest.NewRecorder()
			withID(tc.id, mux).ServeHTTP(w, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d (%s)", w.Code, tc.want, w.Body)
			}
			if reached != (tc.want == 200) {
				t.Fatalf("handler reached = %v", reached)
			}
			if tc.want != 200 {
				decodeProblem(t, w)
			}
		})
	}
}

func TestRequireScopeChallenge(t *testing.T) {
	h := withID(&gatewaykit.Identity{Subject: "a"}, auth.RequireScope("orders:write")(http.NotFoundHandler()))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if c := w.Header().Get("WWW-Authenticate"); !strings.Contains(c, `error="insufficient_scope"`) || !strings.Contains(c, "orders:write") {
		t.Fatalf("challenge %q", c)
	}
}

func TestAuthorizeCustomErrorHandler(t *testing.T) {
	var got *gatewaykit.Problem
	mw := auth.Authorize(auth.AnyRole("admin"), func(w http.ResponseWriter, r *http.Request, p *gatewaykit.Problem) {
		got = p
		w.WriteHeader(http.StatusTeapot)
	})
	h := withID(&gatewaykit.Identity{Subject: "a"}, mw(http.NotFoundHandler()))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(context.Background()))
	if w.Code != http.StatusTeapot || got == nil || got.Status != http.StatusForbidden {
		t.Fatalf("code %d problem %+v", w.Code, got)
	}
}
