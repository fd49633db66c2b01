package discovery_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/discovery"
)

func TestStaticValidation(t *testing.T) {
	tests := map[string]map[string][]discovery.Instance{
		"empty service name": {"": {{Address: "a", Port: 1}}},
		"no address":         {"s": {{Port: 1}}},
		"port zero":          {"s": {{Address: "a"}}},
		"port too big":       {"s": {{Address: "a", Port: 70000}}},
		"duplicate ID":       {"s": {{Address: "a", Port: 1}, {Address: "a", Port: 1}}},
	}
	for name, services := range tests {
		if _, err := discovery.NewStatic(services); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, hc := range map[string]discovery.HealthCheck{
		"relative path":  {Path: "healthz", Interval: time.Second},
		"tiny interval":  {Path: "/h", Interval: time.Millisecond},
		"negative count": {Path: "/h", Interval: time.Second, HealthyThreshold: -1},
	} {
		if _, err := discovery.NewStatic(nil, discovery.WithHealthCheck(hc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := discovery.NewStatic(nil, discovery.WithBalancer(discovery.P2C())); err == nil {
		t.Error("proxy option accepted by NewStatic")
	}
}

func TestStaticResolver(t *testing.T) {
	s, err := discovery.NewStatic(map[string][]discovery.Instance{
		"orders": {{Address: "10.0.0.1", Port: 80, Tags: []string{"v1"}}, {ID: "b", Address: "10.0.0.2", Port: 80}},
		"empty":  nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	insts, err := s.Instances(context.Background(), "orders")
	if err != nil || len(insts) != 2 || insts[0].ID != "10.0.0.1:80" || insts[1].ID != "b" || !insts[0].HasTag("v1") {
		t.Fatalf("Instances = %+v, %v", insts, err)
	}
	if insts, err := s.Instances(context.Background(), "empty"); err != nil || len(insts) != 0 {
		t.Fatalf("empty service: %v, %v", insts, err)
	}
	if _, err := s.Instances(context.Background(), "nope"); !errors.Is(err, discovery.ErrUnknownService) {
		t.Fatalf("unknown service: %v", err)
	}
	var got []discovery.Instance
	stop, err := s.Watch("orders", func(in []discovery.Instance) { got = in })
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if len(got) != 2 {
		t.Fatalf("Watch delivered %v, want the list at once", got)
	}
	if _, err := s.Watch("nope", func([]discovery.Instance) {}); !errors.Is(err, discovery.ErrUnknownService) {
		t.Fatalf("Watch unknown: %v", err)
	}
}

func TestStaticActiveHealthChecks(t *testing.T) {
	var bDown atomic.Bool
	a := upstream(t, echo("a"))
	b := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && bDown.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		echo("b")(w, r)
	})
	res, err := discovery.NewStatic(map[string][]discovery.Instance{"svc": {instanceOf(t, a), instanceOf(t, b)}},
		discovery.WithHealthCheck(discovery.HealthCheck{Path: "/healthz", Interval: 20 * time.Millisecond, Timeout: 10 * time.Second, UnhealthyThreshold: 2}))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	p, err := discovery.NewProxy(res, "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	select {
	case <-p.Ready():
	default:
		t.Fatal("a proxy over a static resolver is not ready when NewProxy returns")
	}
	if len(p.Instances()) != 2 {
		t.Fatal("instances should start healthy")
	}
	bDown.Store(true)
	eventually(t, "failing instance leaves rotation", func() bool { return len(p.Instances()) == 1 })
	if got := p.Instances()[0].Port; got != instanceOf(t, a).Port {
		t.Fatalf("the wrong instance left: %d remains", got)
	}
	bDown.Store(false)
	eventually(t, "recovered instance returns", func() bool { return len(p.Instances()) == 2 })

	// A dead instance (connection refused) fails its checks too.
	b.Close()
	eventually(t, "dead instance leaves rotation", func() bool { return len(p.Instances()) == 1 })
}
