package gatewaykit_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatewaykit/gatewaykit"
)

func tag(name string, log *[]string) gatewaykit.Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			*log = append(*log, name+">")
			next.ServeHTTP(w, r)
			*log = append(*log, "<"+name)
		})
	}
}

func TestChainOrder(t *testing.T) {
	var log []string
	h := gatewaykit.Chain(tag("a", &log), nil, tag("b", &log), tag("c", &log))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		log = append(log, "h")
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if got, want := strings.Join(log, " "), "a> b> c> h <c <b <a"; got != want {
		t.Fatalf("order = %q, want %q", got, want)
	}
}

func TestChainEmpty(t *testing.T) {
	called := false
	h := gatewaykit.Chain()(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if !called {
		t.Fatal("handler not called")
	}
}

func TestChainDoesNotAliasInput(t *testing.T) {
	var log []string
	mws := []gatewaykit.Middleware{tag("a", &log), tag("b", &log)}
	chain := gatewaykit.Chain(mws...)
	mws[0] = tag("x", &log)
	chain(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if log[0] != "a>" {
		t.Fatalf("chain changed after caller mutated its slice: %v", log)
	}
}

func TestIdentityRoundTrip(t *testing.T) {
	if _, ok := gatewaykit.IdentityFrom(context.Background()); ok {
		t.Fatal("empty context has an identity")
	}
	if _, ok := gatewaykit.IdentityFrom(gatewaykit.WithIdentity(context.Background(), nil)); ok {
		t.Fatal("nil identity reported as present")
	}
	in := &gatewaykit.Identity{Subject: "alice", Roles: []string{"customer"}, Scopes: []string{"orders:read"}, Tier: "free", Method: "jwt"}
	got, ok := gatewaykit.IdentityFrom(gatewaykit.WithIdentity(context.Background(), in))
	if !ok || got != in {
		t.Fatalf("IdentityFrom = %v, %v", got, ok)
	}
	if !got.HasRole("customer") || got.HasRole("admin") || !got.HasScope("orders:read") || got.HasScope("orders") {
		t.Fatal("HasRole/HasScope wrong")
	}
	if got.Anonymous() || !(&gatewaykit.Identity{}).Anonymous() || !(*gatewaykit.Identity)(nil).Anonymous() {
		t.Fatal("Anonymous wrong")
	}
	var nilID *gatewaykit.Identity
	if nilID.HasRole("x") || nilID.HasScope("x") {
		t.Fatal("nil identity has roles")
	}
}
