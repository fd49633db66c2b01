package discovery_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gatewaykit/gatewaykit/discovery"
)

// switchable answers 500 while failing is set, else 200.
func switchable(t *testing.T, name string, failing *atomic.Bool) discovery.Instance {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		echo(name)(w, r)
	})
	inst := instanceOf(t, up)
	inst.ID = name
	return inst
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func ids(p *discovery.Proxy) []string {
	var out []string
	for _, in := range p.Instances() {
		out = append(out, in.ID)
	}
	return out
}

func TestPassiveEjectionAndReadmission(t *testing.T) {
	var aFails, bFails atomic.Bool
	aFails.Store(true)
	clk := newFakeClock()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	p, front := newProxy(t, []discovery.Instance{switchable(t, "a", &aFails), switchable(t, "b", &bFails)},
		discovery.WithClock(clk), discovery.WithMeterProvider(mp),
		discovery.WithPassiveHealth(discovery.PassiveHealth{ConsecutiveFailures: 3, BaseEjection: 10 * time.Second, MaxEjection: 40 * time.Second, MaxEjectedPercent: 50}))
	requests := int64(0)
	do := func() int { requests++; return get(t, front.URL) }

	// Round robin: requests alternate a, b; a fails 3 times in a row within 6 requests.
	fivexx := 0
	for range 6 {
		if do() == 500 {
			fivexx++
		}
	}
	if fivexx != 3 {
		t.Fatalf("%d failures before ejection, want 3", fivexx)
	}
	if got := ids(p); len(got) != 1 || got[0] != "b" {
		t.Fatalf("after 3 failures routable = %v, want [b]", got)
	}
	for range 10 {
		if code := do(); code != 200 {
			t.Fatalf("request to the remaining instance: %d", code)
		}
	}
	clk.Advance(9 * time.Second)
	do()
	if len(ids(p)) != 1 {
		t.Fatal("readmitted before the ejection period ended")
	}
	clk.Advance(time.Second)
	do() // the first request after the period readmits
	if got := ids(p); len(got) != 2 {
		t.Fatalf("after 10s routable = %v, want both", got)
	}

	// Ejected again soon after: the period doubles.
	for len(ids(p)) == 2 {
		do()
	}
	clk.Advance(10 * time.Second)
	do()
	if len(ids(p)) != 1 {
		t.Fatal("second ejection did not double the period")
	}
	clk.Advance(10 * time.Second)
	do()
	if len(ids(p)) != 2 {
		t.Fatal("not readmitted after the doubled period")
	}

	// A success resets the failure count: a recovered instance stays in.
	aFails.Store(false)
	for range 20 {
		if code := do(); code != 200 {
			t.Fatalf("status %d after recovery", code)
		}
	}
	if len(ids(p)) != 2 {
		t.Fatal("healthy instance ejected")
	}

	// Both failing: at most 50% ejected, never the last one.
	aFails.Store(true)
	bFails.Store(true)
	for range 40 {
		do()
	}
	if got := ids(p); len(got) != 1 {
		t.Fatalf("with everything failing routable = %v, want one instance kept", got)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	ejections := map[string]int64{}
	picks := int64(0)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				inst, _ := dp.Attributes.Value(attribute.Key("instance"))
				switch m.Name {
				case "gatewaykit.discovery.ejections":
					ejections[inst.AsString()] += dp.Value
				case "gatewaykit.discovery.picks":
					picks += dp.Value
				}
			}
		}
	}
	var total int64
	for _, n := range ejections {
		total += n
	}
	if total != 3 {
		t.Errorf("ejections metric = %v, want 3 in total", ejections)
	}
	if picks != requests {
		t.Errorf("picks metric = %d, want %d (one per forwarded request)", picks, requests)
	}
}

// Connection errors count towards ejection whether or not the request is retried elsewhere:
// without retries the client sees them (2 x 502) until the instance is ejected, with retries (the
// default) it never does.
func TestPassiveHealthConnectionErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    []discovery.Option
		want502 int
	}{{"without retries", []discovery.Option{discovery.WithoutRetry()}, 2}, {"with retries", nil, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			var ok atomic.Bool
			good := switchable(t, "good", &ok)
			dead := discovery.Instance{ID: "dead", Address: "127.0.0.1", Port: 1}
			p, front := newProxy(t, []discovery.Instance{dead, good}, append([]discovery.Option{discovery.WithClock(clk),
				discovery.WithPassiveHealth(discovery.PassiveHealth{ConsecutiveFailures: 2, BaseEjection: time.Minute, MaxEjection: time.Minute, MaxEjectedPercent: 50})},
				tc.opts...)...)
			codes := map[int]int{}
			for range 10 {
				codes[get(t, front.URL)]++
			}
			if codes[502] != tc.want502 || codes[200] != 10-tc.want502 {
				t.Fatalf("status counts %v, want %d x 502 then all 200", codes, tc.want502)
			}
			if got := ids(p); len(got) != 1 || got[0] != "good" {
				t.Fatalf("routable = %v", got)
			}
		})
	}
}

func TestPassiveHealthDisabled(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	var ok atomic.Bool
	p, front := newProxy(t, []discovery.Instance{switchable(t, "a", &fail), switchable(t, "b", &ok)}, discovery.WithoutPassiveHealth())
	for range 20 {
		get(t, front.URL)
	}
	if len(ids(p)) != 2 {
		t.Fatal("instance ejected with passive health disabled")
	}
}

// An update that removes the healthy instances must not leave the proxy with only ejected ones
// (503 although the resolver reports a healthy instance): the ejection limits hold after updates.
func TestPassiveEjectionLimitsHoldAfterUpdates(t *testing.T) {
	var fail, ok atomic.Bool
	fail.Store(true)
	a, b := switchable(t, "a", &fail), switchable(t, "b", &ok)
	res := &manualResolver{}
	p, err := discovery.NewProxy(res, "svc", discovery.WithClock(newFakeClock()),
		discovery.WithPassiveHealth(discovery.PassiveHealth{ConsecutiveFailures: 1, BaseEjection: time.Hour, MaxEjection: time.Hour, MaxEjectedPercent: 50}))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	front := httptest.NewServer(p)
	defer front.Close()
	res.fn([]discovery.Instance{a, b})
	for len(ids(p)) == 2 {
		get(t, front.URL)
	}
	if got := ids(p); len(got) != 1 || got[0] != "b" {
		t.Fatalf("routable %v, want [b]", got)
	}
	res.fn([]discovery.Instance{a}) // b is gone: a is the last instance and must be routable
	if got := ids(p); len(got) != 1 || got[0] != "a" {
		t.Fatalf("after b left, routable %v, want [a]", got)
	}
	fail.Store(false)
	if code := get(t, front.URL); code != http.StatusOK {
		t.Fatalf("status %d, want the last instance to serve", code)
	}
}
