package consultest_test

import (
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-cleanhttp"
	"go.uber.org/goleak"

	"github.com/gatewaykit/gatewaykit/internal/consultest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAgentRoundTripStopRestart(t *testing.T) {
	a := consultest.Start(t)
	cfg := api.DefaultConfig()
	cfg.Address = a.Addr
	tr := cleanhttp.DefaultTransport()
	defer tr.CloseIdleConnections()
	cfg.Transport = tr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := &api.AgentServiceRegistration{ID: "orders-1", Name: "orders", Address: "127.0.0.1", Port: 9001, Tags: []string{"v2"}}
	if err := c.Agent().ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	entries, _, err := c.Health().Service("orders", "v2", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Service.Port != 9001 {
		t.Fatalf("health entries = %+v", entries)
	}
	a.Stop()
	if _, _, err := c.Health().Service("orders", "", true, nil); err == nil {
		t.Fatal("query succeeded against a stopped agent")
	}
	a.Restart()
	if _, _, err := c.Health().Service("orders", "", true, nil); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}
