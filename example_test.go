package gatewaykit_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/gatewaykit/gatewaykit"
)

func Example() {
	ips, err := gatewaykit.NewClientIPResolver("10.0.0.0/8") // our load balancers
	if err != nil {
		panic(err)
	}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ips.ClientIP(r).String() != "198.51.100.4" {
			gatewaykit.WriteProblem(w, r, gatewaykit.NewProblem(http.StatusForbidden, "not on the allow list"))
			return
		}
		fmt.Fprintln(w, "hello", gatewaykit.RequestIDFrom(r.Context()))
	})
	h := gatewaykit.Chain(gatewaykit.RequestID)(app)

	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.5:40000"
	r.Header.Set("X-Forwarded-For", "198.51.100.4")
	r.Header.Set("X-Request-ID", "demo-1")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	fmt.Print(w.Code, " ", w.Body.String())
	// Output: 200 hello demo-1
}

func ExampleWriteProblem() {
	w := httptest.NewRecorder()
	gatewaykit.WriteProblem(w, httptest.NewRequest("GET", "/", nil),
		gatewaykit.NewProblem(http.StatusTooManyRequests, "rate limit exceeded").WithRetryAfter(30e9))
	fmt.Println(w.Code, w.Header().Get("Content-Type"), w.Header().Get("Retry-After"))
	fmt.Print(w.Body.String())
	// Output:
	// 429 application/problem+json 30
	// {"detail":"rate limit exceeded","status":429,"title":"Too Many Requests","type":"about:blank"}
}
