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
