package discovery_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-cleanhttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gatewaykit/gatewaykit/discovery"
	"github.com/gatewaykit/gatewaykit/internal/consultest"
)

func consulClient(t *testing.T, a *consultest.Agent) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = a.Addr
	tr := cleanhttp.DefaultPooledTransport()
	t.Cleanup(tr.CloseIdleConnections)
	cfg.Transport = tr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func register(t *testing.T, c *api.Client, id string, inst discovery.Instance) {
	t.Helper()
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: "orders", Address: inst.Address, Port: inst.Port, Tags: inst.Tags,
		Check: &api.AgentServiceCheck{CheckID: "check-" + id, TTL: "10m", Status: api.HealthPassing},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					out[m.Name] += float64(dp.Value)
				}
			case metricdata.Gauge[float64]:
				for _, dp := range d.DataPoints {
					out[m.Name] += dp.Value
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					out[m.Name] += float64(dp.Value)
				}
			}
		}
	}
	return out
}

func TestConsulProxyLifecycle(t *testing.T) {
	agent := consultest.Start(t)
	client := consulClient(t, agent)
	a, b, c := upstream(t, echo("a")), upstream(t, echo("b")), upstream(t, echo("c"))
	register(t, client, "orders-a", instanceOf(t, a))
	register(t, client, "orders-b", instanceOf(t, b))

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	// A long wait time: every change below must arrive because the blocking query returns on the
	// change, not because it timed out.
	res, err := discovery.NewConsul(client, discovery.WithWaitTime(5*time.Minute),
		discovery.WithBackoff(50*time.Millisecond, 200*time.Millisecond), discovery.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	p, err := discovery.NewProxy(res, "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	front := httptest.NewServer(p)
	defer front.Close()
	select {
	case <-p.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("proxy not ready: no instance set from Consul")
	}

	spread := func(n int) map[string]int {
		t.Helper()
		names := map[string]int{}
		for range n {
			req, _ := http.NewRequest("GET", front.URL+"/", nil)
			names[doSeen(t, req).Name]++
		}
		return names
	}
	routable := func(want ...string) func() bool {
		return func() bool {
			got := ids(p)
			if len(got) != len(want) {
				return false
			}
			for i := range got {
				if got[i] != want[i] {
					return false
				}
			}
			return true
		}
	}

	eventually(t, "both instances routable", routable("orders-a", "orders-b"))
	if names := spread(20); names["a"] != 10 || names["b"] != 10 {
		t.Fatalf("load over two instances: %v", names)
	}

	// b goes critical: traffic moves within one blocking-query cycle.
	if err := client.Agent().UpdateTTL("check-orders-b", "down", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	eventually(t, "critical instance removed", routable("orders-a"))
	if names := spread(10); names["a"] != 10 {
		t.Fatalf("after b went critical: %v", names)
	}
	if err := client.Agent().UpdateTTL("check-orders-b", "up", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	eventually(t, "recovered instance back", routable("orders-a", "orders-b"))

	// Deregister a.
	if err := client.Agent().ServiceDeregister("orders-a"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deregistered instance removed", routable("orders-b"))

	// Agent down: the last good set is still served, staleness grows, errors are counted.
	agent.Stop()
	time.Sleep(300 * time.Millisecond)
	if names := spread(5); names["b"] != 5 {
		t.Fatalf("with Consul down: %v", names)
	}
	if insts, err := res.Instances(context.Background(), "orders"); err != nil || len(insts) != 1 {
		t.Fatalf("Instances with Consul down = %v, %v; want the last good set", insts, err)
	}
	eventually(t, "staleness and errors reported", func() bool {
		m := collect(t, reader)
		return m["gatewaykit.discovery.resolver.staleness"] > 0 && m["gatewaykit.discovery.resolver.errors"] > 0
	})

	// Agent back (a dev agent restarts empty): updates resume.
	agent.Restart()
	client2 := consulClient(t, agent)
	register(t, client2, "orders-c", instanceOf(t, c))
	eventually(t, "updates after the agent restarted", routable("orders-c"))
	if names := spread(4); names["c"] != 4 {
		t.Fatalf("after restart: %v", names)
	}
	eventually(t, "staleness back to 0", func() bool {
		return collect(t, reader)["gatewaykit.discovery.resolver.staleness"] == 0
	})
}

func TestConsulInstancesOptions(t *testing.T) {
	agent := consultest.Start(t)
	client := consulClient(t, agent)
	register(t, client, "o1", discovery.Instance{Address: "127.0.0.1", Port: 9001, Tags: []string{"v1"}})
	register(t, client, "o2", discovery.Instance{Address: "127.0.0.1", Port: 9002, Tags: []string{"v2", "canary"}})
	if err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "w", Name: "weighted", Address: "127.0.0.1", Port: 9003,
		Weights: &api.AgentWeights{Passing: 7, Warning: 1}, Meta: map[string]string{"zone": "a"}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		service string
		opts    []discovery.Option
		want    []string
		wantErr bool
	}{
		{"all passing", "orders", nil, []string{"o1", "o2"}, false},
		{"tag filter", "orders", []discovery.Option{discovery.WithTags("v2")}, []string{"o2"}, false},
		{"two tags", "orders", []discovery.Option{discovery.WithTags("v2", "canary")}, []string{"o2"}, false},
		{"no match", "orders", []discovery.Option{discovery.WithTags("v3")}, nil, false},
		{"unknown service", "nothing", nil, nil, false},
		{"unknown datacenter", "orders", []discovery.Option{discovery.WithDatacenter("nowhere")}, nil, true},
		{"token on an agent without ACLs", "orders", []discovery.Option{discovery.WithToken("anything")}, []string{"o1", "o2"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := discovery.NewConsul(client, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Close()
			insts, err := res.Instances(context.Background(), tt.service)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			var got []string
			for _, in := range insts {
				got = append(got, in.ID)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("instances %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("instances %v, want %v", got, tt.want)
				}
			}
		})
	}
	res, err := discovery.NewConsul(client)
	if err != nil {
		t.Fatal(err)
	}
	insts, err := res.Instances(context.Background(), "weighted")
	if err != nil || len(insts) != 1 || insts[0].Weight != 7 || insts[0].Meta["zone"] != "a" || insts[0].Port != 9003 {
		t.Fatalf("weighted instance = %+v, %v", insts, err)
	}
	_ = res.Close()
	if _, err := res.Instances(context.Background(), "weighted"); !errors.Is(err, discovery.ErrClosed) {
		t.Fatalf("Instances after Close: %v, want ErrClosed", err)
	}
	if _, err := res.Watch("weighted", func([]discovery.Instance) {}); !errors.Is(err, discovery.ErrClosed) {
		t.Fatalf("Watch after Close: %v, want ErrClosed", err)
	}
}

func TestConsulWatchStopAndShare(t *testing.T) {
	agent := consultest.Start(t)
	client := consulClient(t, agent)
	register(t, client, "o1", discovery.Instance{Address: "127.0.0.1", Port: 9001})
	res, err := discovery.NewConsul(client)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	got1, got2 := make(chan int, 10), make(chan int, 10)
	stop1, err := res.Watch("orders", func(in []discovery.Instance) { got1 <- len(in) })
	if err != nil {
		t.Fatal(err)
	}
	stop2, err := res.Watch("orders", func(in []discovery.Instance) { got2 <- len(in) })
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range []chan int{got1, got2} {
		select {
		case n := <-ch:
			if n != 1 {
				t.Fatalf("first delivery has %d instances", n)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no first delivery")
		}
	}
	stop1()
	register(t, client, "o2", discovery.Instance{Address: "127.0.0.1", Port: 9002})
	select {
	case n := <-got2:
		if n != 2 {
			t.Fatalf("update has %d instances", n)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no update delivered")
	}
	if len(got1) != 0 {
		t.Fatal("stopped watcher was called")
	}
	stop2()
	stop2() // idempotent
}

func TestConsulValidation(t *testing.T) {
	if _, err := discovery.NewConsul(nil); err == nil {
		t.Error("nil client accepted")
	}
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for name, opt := range map[string]discovery.Option{
		"wait time":      discovery.WithWaitTime(time.Hour),
		"backoff":        discovery.WithBackoff(time.Second, time.Millisecond),
		"empty dc":       discovery.WithDatacenter(""),
		"empty token":    discovery.WithToken(""),
		"empty tag":      discovery.WithTags("v1", ""),
		"proxy option":   discovery.WithBalancer(discovery.P2C()),
		"static option":  discovery.WithHealthCheck(discovery.HealthCheck{Path: "/", Interval: time.Second}),
		"nil clock":      discovery.WithClock(nil),
		"nil meter prov": discovery.WithMeterProvider(nil),
	} {
		if _, err := discovery.NewConsul(client, opt); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
