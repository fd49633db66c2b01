package aggregate_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/aggregate"
)

// The design brief's dashboard, composed in one binary: in-process handlers stand in for the
// user, order and recommendation services (network parts take an absolute URL instead).
func Example() {
	users := http.NewServeMux()
	users.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q,"name":"Alice"}`, r.PathValue("id"))
	})
	orders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `[{"id":1,"user":%q}]`, r.URL.Query().Get("user_id"))
	})
	recommendations := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "model is warming up", http.StatusServiceUnavailable)
	})

	dash, err := aggregate.New([]aggregate.Part{
		{Name: "user", Handler: users, URL: "/users/{sub}", Required: true},
		{Name: "orders", Handler: orders, URL: "/orders?user_id={sub}"},
		{Name: "recommendations", Handler: recommendations, URL: "/recommendations?user_id={sub}"},
	}, aggregate.WithVars(aggregate.IdentityVars))
	if err != nil {
		panic(err)
	}
	defer dash.Close()

	r := httptest.NewRequest("GET", "/api/dashboard", nil)
	r = r.WithContext(gatewaykit.WithIdentity(r.Context(), &gatewaykit.Identity{Subject: "alice"}))
	w := httptest.NewRecorder()
	dash.ServeHTTP(w, r)
	body, _ := io.ReadAll(w.Body)
	fmt.Println(w.Code, w.Header().Get("X-Gateway-Partial"))
	fmt.Println(string(body))
	// Output:
	// 200 true
	// {"user":{"id":"alice","name":"Alice"},"orders":[{"id":1,"user":"alice"}],"_meta":{"partial":true,"errors":[{"part":"recommendations","error":"upstream status 503"}]}}
}
