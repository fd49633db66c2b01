package bff_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/bff"
)

func Example() {
	users := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":7,"name":"Ada","avatar":"a.png","email":"ada@example.com","notes":"vip"}`)
	})
	shape, err := bff.New(
		bff.Variant("mobile", bff.PathPrefix("/mobile/api"), bff.Allow("id", "name", "avatar")),
		bff.Variant("web", bff.PathPrefix("/web/api"), bff.Deny("notes")),
		bff.Variant("admin", bff.PathPrefix("/admin/api"), bff.VisibleTo("admin", "notes")),
	)
	if err != nil {
		panic(err)
	}
	h := shape.Wrap(users)

	for _, path := range []string{"/mobile/api/users/7", "/web/api/users/7", "/admin/api/users/7"} {
		r := httptest.NewRequest("GET", path, nil)
		r = r.WithContext(gatewaykit.WithIdentity(r.Context(), &gatewaykit.Identity{Subject: "u1", Roles: []string{"admin"}}))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Println(w.Body.String())
	}
	// Output:
	// {"id":7,"name":"Ada","avatar":"a.png"}
	// {"id":7,"name":"Ada","avatar":"a.png","email":"ada@example.com"}
	// {"id":7,"name":"Ada","avatar":"a.png","email":"ada@example.com","notes":"vip"}
}

// The design brief's order enrichment: the order service learns who ordered from the gateway,
// never from the client.
func ExampleEnrichBody() {
	orders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Println(r.Header.Get("X-User-ID"), string(b))
	})
	enrich, err := bff.New(bff.Enrich(), bff.EnrichBody("user_id", bff.Subject()))
	if err != nil {
		panic(err)
	}
	r := httptest.NewRequest("POST", "/api/orders", strings.NewReader(`{"item":"book","user_id":"someone-else"}`))
	r.Header.Set("Content-Type", "application/json")
	r = r.WithContext(gatewaykit.WithIdentity(r.Context(), &gatewaykit.Identity{Subject: "alice"}))
	enrich.Wrap(orders).ServeHTTP(httptest.NewRecorder(), r)
	// Output: alice {"item":"book","user_id":"alice"}
}
