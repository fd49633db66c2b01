package discovery_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/gatewaykit/gatewaykit/discovery"
)

// BenchmarkProxy compares the discovery proxy (P2C, passive health, two instances of one
// upstream server) with a bare default httputil.ReverseProxy (NewSingleHostReverseProxy,
// http.DefaultTransport) to the same upstream, in the same run. Compare ns/op of the
// sub-benchmarks: throughput ratio = bare ns/op / discovery ns/op.
//
// "handler" calls ServeHTTP directly with a recorder (the proxy path alone, upstream over
// loopback); "http" goes through a front server and a client as well.
func BenchmarkProxy(b *testing.B) {
	body := strings.Repeat("x", 1024)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, body)
	}))
	defer up.Close()
	target, _ := url.Parse(up.URL)
	bare := httputil.NewSingleHostReverseProxy(target)

	inst := instanceOf(b, up)
	inst2 := inst
	inst2.ID = "second" // same server, a second endpoint: P2C has a choice to make
	res, err := discovery.NewStatic(map[string][]discovery.Instance{"svc": {inst, inst2}})
	if err != nil {
		b.Fatal(err)
	}
	defer res.Close()
	p, err := discovery.NewProxy(res, "svc", discovery.WithBalancer(discovery.P2C()), discovery.StripPrefix("/api"))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()

	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"discovery", p}} {
		b.Run("handler/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest("GET", "http://gw.example/api/orders/7", nil)
				req.RemoteAddr = "192.0.2.10:4242"
				for pb.Next() {
					rec := httptest.NewRecorder()
					tc.h.ServeHTTP(rec, req)
					if rec.Code != 200 {
						b.Fatalf("status %d", rec.Code)
					}
				}
			})
		})
	}
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"discovery", p}} {
		b.Run("http/"+tc.name, func(b *testing.B) {
			front := httptest.NewServer(tc.h)
			defer front.Close()
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(front.URL + "/api/orders/7")
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		})
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

// BenchmarkProxyRatio runs the bare ReverseProxy and the discovery proxy (P2C, passive health) in
// alternating rounds of 40 requests from 4 concurrent clients, so all see the same machine load,
// and reports "ratio": discovery throughput / bare throughput (the target is >= 0.95).
// "tuned-ratio" compares with a bare ReverseProxy given the same tuned DefaultTransport, which
// isolates the cost of picking, passive health and the Rewrite from the transport's benefit.
func BenchmarkProxyRatio(b *testing.B) {
	body := strings.Repeat("x", 1024)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, body)
	}))
	defer up.Close()
	target, _ := url.Parse(up.URL)
	bare := httputil.NewSingleHostReverseProxy(target)
	tuned := httputil.NewSingleHostReverseProxy(target)
	tunedTr := discovery.DefaultTransport()
	defer tunedTr.CloseIdleConnections()
	tuned.Transport = tunedTr
	inst := instanceOf(b, up)
	inst2 := inst
	inst2.ID = "second"
	res, err := discovery.NewStatic(map[string][]discovery.Instance{"svc": {inst, inst2}})
	if err != nil {
		b.Fatal(err)
	}
	defer res.Close()
	p, err := discovery.NewProxy(res, "svc", discovery.WithBalancer(discovery.P2C()), discovery.StripPrefix("/api"))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	fronts := []*httptest.Server{httptest.NewServer(bare), httptest.NewServer(p), httptest.NewServer(tuned)}
	for _, f := range fronts {
		defer f.Close()
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	const workers, round = 4, 40
	run := func(url string) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range round / workers {
					resp, err := client.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	var spent [3]time.Duration
	for _, f := range fronts {
		run(f.URL + "/api/x") // warm the connection pools
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += 3 * round {
		for j := range fronts {
			k := j
			if (i/(3*round))%2 == 1 {
				k = len(fronts) - 1 - j // alternate the order so load drifts cancel out
			}
			spent[k] += run(fronts[k].URL + "/api/x")
		}
	}
	b.StopTimer()
	perProxy := float64(max(b.N/3, 1))
	b.ReportMetric(float64(spent[0].Nanoseconds())/perProxy, "bare-ns/req")
	b.ReportMetric(float64(spent[2].Nanoseconds())/perProxy, "tuned-ns/req")
	b.ReportMetric(float64(spent[1].Nanoseconds())/perProxy, "discovery-ns/req")
	b.ReportMetric(float64(spent[0])/float64(spent[1]), "ratio")
	b.ReportMetric(float64(spent[2])/float64(spent[1]), "tuned-ratio")
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

// cannedTransport answers every request in memory, so BenchmarkProxyPath measures the proxy path
// alone: picking, Rewrite, header copying, body copy, bookkeeping.
type cannedTransport struct{ body string }

func (c cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Request: r, ContentLength: int64(len(c.body)),
		Header: http.Header{"Content-Type": {"text/plain"}}, Body: io.NopCloser(strings.NewReader(c.body))}, nil
}

// refuseHost fails round trips to host as a refused connection would, and passes the rest on.
type refuseHost struct {
	host string
	next http.RoundTripper
}

var errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}

func (r refuseHost) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == r.host {
		return nil, errRefused
	}
	return r.next.RoundTrip(req)
}

// BenchmarkProxyPath compares the discovery proxy's own per-request cost with a bare
// httputil.ReverseProxy (Rewrite with SetURL and SetXForwarded, as its docs suggest) over the same
// in-memory transport. "discovery/no-retries" is the proxy without its retry layer (WithoutRetry);
// in "discovery/retried" every request is refused by its first instance (round robin, passive
// health off) and retried on the other.
func BenchmarkProxyPath(b *testing.B) {
	tr := cannedTransport{body: strings.Repeat("x", 1024)}
	target, _ := url.Parse("http://10.0.0.1:8080")
	bare := &httputil.ReverseProxy{Transport: tr, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.SetXForwarded()
	}}
	res, err := discovery.NewStatic(map[string][]discovery.Instance{"svc": {
		{Address: "10.0.0.1", Port: 8080}, {Address: "10.0.0.2", Port: 8080}}})
	if err != nil {
		b.Fatal(err)
	}
	defer res.Close()
	p, err := discovery.NewProxy(res, "svc", discovery.WithBalancer(discovery.P2C()), discovery.WithTransport(tr), discovery.StripPrefix("/api"))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	// The same with the OpenTelemetry metric SDK recording (the globals are no-ops above).
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer mp.Shutdown(context.Background())
	withSDK, err := discovery.NewProxy(res, "svc", discovery.WithBalancer(discovery.P2C()), discovery.WithTransport(tr),
		discovery.StripPrefix("/api"), discovery.WithMeterProvider(mp))
	if err != nil {
		b.Fatal(err)
	}
	defer withSDK.Close()
	// Without the retry layer, and with every request failing over: the first instance refuses.
	noRetry, err := discovery.NewProxy(res, "svc", discovery.WithBalancer(discovery.P2C()), discovery.WithTransport(tr),
		discovery.StripPrefix("/api"), discovery.WithoutRetry())
	if err != nil {
		b.Fatal(err)
	}
	defer noRetry.Close()
	refusing := refuseHost{host: "10.0.0.1:8080", next: tr}
	policy := discovery.DefaultRetryPolicy()
	policy.BudgetRatio = 10 // every request may retry
	retried, err := discovery.NewProxy(res, "svc", discovery.WithTransport(refusing), discovery.StripPrefix("/api"),
		discovery.WithoutPassiveHealth(), discovery.WithRetry(policy))
	if err != nil {
		b.Fatal(err)
	}
	defer retried.Close()
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"discovery", p}, {"discovery+metricsdk", withSDK}, {"discovery/no-retries", noRetry}, {"discovery/retried", retried}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest("GET", "http://gw.example/api/orders/7", nil)
				req.RemoteAddr = "192.0.2.10:4242"
				browserHeaders(req.Header)
				rec := httptest.NewRecorder()
				for pb.Next() {
					rec.Body.Reset()
					clear(rec.Header())
					tc.h.ServeHTTP(rec, req)
				}
			})
		})
	}
}

// browserHeaders adds the headers a typical browser request carries, so header handling is
// measured on a realistic header map.
func browserHeaders(h http.Header) {
	h.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/130.0")
	h.Set("Accept", "application/json, text/plain, */*")
	h.Set("Accept-Language", "en-US,en;q=0.5")
	h.Set("Accept-Encoding", "gzip, deflate, br")
	h.Set("Cookie", "session=4f1c2a9e; theme=dark")
	h.Set("Authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig")
	h.Set("X-Request-Id", "01JD3V7Q6T0000000000000000")
	h.Set("Referer", "https://shop.example/orders")
}
