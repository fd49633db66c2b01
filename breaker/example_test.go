package breaker_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/gatewaykit/gatewaykit/breaker"
)

// A reverse proxy with one breaker per upstream instance: the Transport rejects requests to an
// open instance with ErrOpen, and ProxyErrorHandler turns that into 503 + Retry-After.
func ExampleBreaker_Transport() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError) // an instance in trouble
	}))
	defer upstream.Close()
	target, _ := url.Parse(upstream.URL)

	brk, err := breaker.New(
		breaker.TripAfter(2, 10*time.Second),
		breaker.OpenTimeout(30*time.Second),
		breaker.Timeout(2*time.Second),
		breaker.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	)
	if err != nil {
		panic(err)
	}
	defer brk.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	proxy := &httputil.ReverseProxy{
		Rewrite:      func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport:    brk.Transport(base),
		ErrorHandler: breaker.ProxyErrorHandler(nil),
	}

	for i := 0; i < 3; i++ {
		rec := httptest.NewRecorder()
		proxy.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/orders", nil))
		fmt.Printf("%d Retry-After=%q\n", rec.Code, rec.Header().Get("Retry-After"))
	}
	fmt.Println(brk.State(target.Host))

	// Outside a proxy, the error itself says why and for how long.
	_, err = brk.Transport(base).RoundTrip(httptest.NewRequest(http.MethodGet, upstream.URL, nil))
	var oe *breaker.OpenError
	fmt.Println(errors.Is(err, breaker.ErrOpen), errors.As(err, &oe) && oe.RetryAfter > 29*time.Second)
	// Output:
	// 500 Retry-After=""
	// 500 Retry-After=""
	// 503 Retry-After="30"
	// open
	// true true
}

// The middleware form guards any handler; rejected requests get a 503 problem or a fallback.
func ExampleBreaker_Wrap() {
	brk, err := breaker.New(
		breaker.WithName("recommendations"),
		breaker.TripAfter(1, 10*time.Second),
		breaker.WithFallback(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"items":[]}`) // a static answer while the upstream is down
		})),
		breaker.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	)
	if err != nil {
		panic(err)
	}
	defer brk.Close()
	h := brk.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	for i := 0; i < 2; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/recommendations", nil))
		fmt.Printf("%d body=%s\n", rec.Code, rec.Body.String())
	}
	// Output:
	// 502 body=
	// 200 body={"items":[]}
}
