package guard_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/guard"
)

// Example puts the guards in front of a ServeMux, first in the chain, and serves it with a
// hardened http.Server.
func Example() {
	proxies, err := gatewaykit.NewClientIPResolver("10.0.0.0/8") // the load balancers
	if err != nil {
		log.Fatal(err)
	}
	paths, err := guard.NewPathSafety()
	if err != nil {
		log.Fatal(err)
	}
	ips, err := guard.NewIPFilter(guard.DenyCIDRs("198.51.100.0/24"), guard.WithClientIP(proxies))
	if err != nil {
		log.Fatal(err)
	}
	limits, err := guard.NewLimits(guard.MaxBodyBytes(256 << 10))
	if err != nil {
		log.Fatal(err)
	}
	busy, err := guard.NewConcurrency(512, guard.MaxWait(50*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	headers, err := guard.NewSecurityHeaders(guard.WithClientIP(proxies))
	if err != nil {
		log.Fatal(err)
	}
	cors, err := guard.NewCORS([]string{"https://shop.example.com"}, guard.AllowMethods("GET", "POST", "DELETE"))
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "order %s", r.PathValue("id"))
	})
	gateway := gatewaykit.Chain(paths.Wrap, ips.Wrap, limits.Wrap, busy.Wrap, headers.Wrap, cors.Wrap)(mux)
	srv := guard.HardenedServer(":8080", gateway)
	_ = srv // in a real program: log.Fatal(srv.ListenAndServe())

	for _, target := range []string{"/api/orders/42", "/api/orders/%2e%2e/admin"} {
		rec := httptest.NewRecorder()
		gateway.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
		body, _ := io.ReadAll(rec.Body)
		fmt.Println(rec.Code, rec.Header().Get("Content-Type"), string(body[:min(len(body), 12)]))
	}
	// Output:
	// 200 text/plain; charset=utf-8 order 42
	// 400 application/problem+json {"detail":"T
}

// ExampleNewCORS answers a browser's preflight for an allowed origin.
func ExampleNewCORS() {
	cors, err := guard.NewCORS([]string{"https://shop.example.com"},
		guard.AllowMethods("GET", "PUT"), guard.AllowCredentials(), guard.MaxAge(time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	req := httptest.NewRequest("OPTIONS", "/api/cart", nil)
	req.Header.Set("Origin", "https://shop.example.com")
	req.Header.Set("Access-Control-Request-Method", "PUT")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	rec := httptest.NewRecorder()
	cors.Wrap(http.NotFoundHandler()).ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
		"Access-Control-Allow-Credentials", "Access-Control-Max-Age"} {
		fmt.Printf("%s: %s\n", k, rec.Header().Get(k))
	}

	_, err = guard.NewCORS([]string{"*"}, guard.AllowCredentials())
	fmt.Println(err)
	// Output:
	// 204
	// Access-Control-Allow-Origin: https://shop.example.com
	// Access-Control-Allow-Methods: GET, PUT
	// Access-Control-Allow-Headers: Authorization, Content-Type
	// Access-Control-Allow-Credentials: true
	// Access-Control-Max-Age: 3600
	// guard: NewCORS: the "*" origin cannot be used with AllowCredentials; list the origins
}

// ExampleNewPathSafety shows the problem a client gets for an encoded traversal.
func ExampleNewPathSafety() {
	paths, err := guard.NewPathSafety()
	if err != nil {
		log.Fatal(err)
	}
	rec := httptest.NewRecorder()
	paths.Wrap(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/api/%2E%2e/admin", nil))
	fmt.Println(rec.Code, rec.Body.String())
	// Output:
	// 400 {"detail":"The request path contains an encoded dot segment.","status":400,"title":"Bad Request","type":"about:blank"}
}
