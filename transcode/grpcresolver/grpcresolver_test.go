package grpcresolver_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/gatewaykit/gatewaykit/transcode/grpcresolver"
	"github.com/gatewaykit/gatewaykit/transcode/internal/testpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// numbered answers Echo with its own number in Index.
type numbered struct {
	testpb.UnimplementedEchoServiceServer
	n int32
}

func (s numbered) Echo(context.Context, *testpb.EchoRequest) (*testpb.EchoResponse, error) {
	return &testpb.EchoResponse{Index: s.n}, nil
}

func backend(t *testing.T, n int32) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testpb.RegisterEchoServiceServer(srv, numbered{n: n})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}

// table is a lookup whose answer tests change.
type table struct {
	mu       sync.Mutex
	addrs    []string
	err      error
	services []string
}

func (tb *table) set(err error, addrs ...string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.addrs, tb.err = addrs, err
}

func (tb *table) lookup(_ context.Context, service string) ([]string, error) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.services = append(tb.services, service)
	return tb.addrs, tb.err
}

func dial(t *testing.T, b *grpcresolver.Builder) testpb.EchoServiceClient {
	t.Helper()
	cc, err := grpc.NewClient("gk:///echo", grpc.WithResolvers(b), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return testpb.NewEchoServiceClient(cc)
}

// eventually retries f until it returns true or 20s pass (generous for a loaded machine).
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func served(c testpb.EchoServiceClient) int32 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := c.Echo(ctx, &testpb.EchoRequest{})
	if err != nil {
		return -1
	}
	return resp.GetIndex()
}

func TestFollowsLookup(t *testing.T) {
	a, b := backend(t, 1), backend(t, 2)
	tb := &table{}
	tb.set(nil, a)
	bld, err := grpcresolver.New("gk", tb.lookup, grpcresolver.RefreshInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, bld)
	if n := served(c); n != 1 {
		t.Fatalf("served by %d, want 1", n)
	}
	tb.set(nil, b)
	eventually(t, "the switch to backend 2", func() bool { return served(c) == 2 })

	// A failing or empty lookup keeps the last good addresses.
	tb.set(errors.New("consul down"))
	time.Sleep(100 * time.Millisecond) // several refreshes
	if n := served(c); n != 2 {
		t.Fatalf("after lookup errors served by %d, want 2 (last good)", n)
	}
	tb.set(nil)
	time.Sleep(100 * time.Millisecond)
	if n := served(c); n != 2 {
		t.Fatalf("after empty lookups served by %d, want 2 (last good)", n)
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.services[0] != "echo" {
		t.Fatalf("looked up %q", tb.services[0])
	}
}

func TestNoInstancesFailsFast(t *testing.T) {
	tb := &table{}
	tb.set(errors.New("unknown service"))
	bld, err := grpcresolver.New("gk", tb.lookup)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, bld)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = c.Echo(ctx, &testpb.EchoRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "unknown service") {
		t.Fatalf("err %v, want UNAVAILABLE naming the lookup failure", err)
	}
}

func TestNewValidates(t *testing.T) {
	lookup := func(context.Context, string) ([]string, error) { return nil, nil }
	for name, f := range map[string]func() (*grpcresolver.Builder, error){
		"empty scheme": func() (*grpcresolver.Builder, error) { return grpcresolver.New("", lookup) },
		"bad scheme":   func() (*grpcresolver.Builder, error) { return grpcresolver.New("1x", lookup) },
		"nil lookup":   func() (*grpcresolver.Builder, error) { return grpcresolver.New("gk", nil) },
		"fast refresh": func() (*grpcresolver.Builder, error) {
			return grpcresolver.New("gk", lookup, grpcresolver.RefreshInterval(time.Millisecond))
		},
		"zero timeout": func() (*grpcresolver.Builder, error) {
			return grpcresolver.New("gk", lookup, grpcresolver.LookupTimeout(0))
		},
		"nil logger": func() (*grpcresolver.Builder, error) {
			return grpcresolver.New("gk", lookup, grpcresolver.WithLogger(nil))
		},
		"nil option": func() (*grpcresolver.Builder, error) { return grpcresolver.New("gk", lookup, nil) },
	} {
		if _, err := f(); err == nil || !strings.HasPrefix(err.Error(), "grpcresolver: ") {
			t.Errorf("%s: err %v", name, err)
		}
	}
	if b, err := grpcresolver.New("gatewaykit+dns", lookup); err != nil || b.Scheme() != "gatewaykit+dns" {
		t.Fatalf("%v %v", b, err)
	}
}
