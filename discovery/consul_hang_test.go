package discovery_test

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/gatewaykit/gatewaykit/discovery"
)

// blackhole accepts connections and never answers, like an agent behind a dead network path.
func blackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// A query that never answers must end in an error (counted, retried) instead of hanging the watch
// forever with the staleness gauge at 0.
func TestConsulQueryThatNeverAnswers(t *testing.T) {
	cfg := api.DefaultConfig()
	cfg.Address = blackhole(t)
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(t.Context())
	res, err := discovery.NewConsul(client, discovery.WithWaitTime(time.Second),
		discovery.WithBackoff(10*time.Millisecond, 20*time.Millisecond), discovery.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	stop, err := res.Watch("orders", func([]discovery.Instance) {})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	deadline := time.Now().Add(45 * time.Second)
	for collect(t, reader)["gatewaykit.discovery.resolver.errors"] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a Consul query that never answers was not abandoned: the watch hangs")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
