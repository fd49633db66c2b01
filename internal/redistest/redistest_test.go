package redistest_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gatewaykit/gatewaykit/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestServerRoundTripKillRestart(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET = %q, %v", v, err)
	}
	s.Kill()
	if s.Running() {
		t.Fatal("still running after Kill")
	}
	ctx2, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := c.Ping(ctx2).Err(); err == nil {
		t.Fatal("PING succeeded against a killed server")
	}
	s.Restart()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after restart: %v", err)
	}
	if n, _ := c.Exists(ctx, "k").Result(); n != 0 {
		t.Fatal("restarted server kept data")
	}
	s.Stop()
	s.Stop() // idempotent
}

func TestTwoServersAreIsolated(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Addr == b.Addr {
		t.Fatal("same address")
	}
	ctx := context.Background()
	if err := a.Client().Set(ctx, "x", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.Client().Exists(ctx, "x").Result(); n != 0 {
		t.Fatal("servers share data")
	}
}
