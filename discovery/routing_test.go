package discovery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gatewaykit/gatewaykit/discovery"
)

func TestProxyRouteByHeader(t *testing.T) {
	v1 := upstream(t, echo("v1"))
	v2 := upstream(t, echo("v2"))
	both := []discovery.Instance{instanceOf(t, v1, "v1"), instanceOf(t, v2, "v2", "canary")}
	tests := []struct {
		fallback discovery.Fallback
		header   string
		want     string // upstream name, "503" or "any"
		allowed  []string
	}{
		{discovery.FallbackTag("v1"), "v2", "v2", nil},
		{discovery.FallbackTag("v1"), "v2", "v2", []string{"v2"}},
		{discovery.FallbackTag("v1"), "canary", "v1", []string{"v1", "v2"}},
		{discovery.FallbackReject(), "canary", "503", []string{"v1", "v2"}},
		{discovery.FallbackTag("v1"), "canary", "v2", nil},
		{discovery.FallbackTag("v1"), "", "v1", nil},
		{discovery.FallbackTag("v1"), "v9", "v1", nil},
		{discovery.FallbackReject(), "v9", "503", nil},
		{discovery.FallbackReject(), "v1", "v1", nil},
		{discovery.FallbackTag("v3"), "", "503", nil},
		{discovery.FallbackAll(), "", "any", nil},
		{discovery.FallbackTag("v1"), "", "v1", []string{"v2"}}, // fallback tag outside the allowed list
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%s/%v", tt.fallback, tt.header, tt.allowed), func(t *testing.T) {
			_, front := newProxy(t, both, discovery.RouteByHeader("x-service-version", tt.fallback, tt.allowed...))
			names := map[string]int{}
			for range 10 {
				req, _ := http.NewRequest("GET", front.URL+"/", nil)
				if tt.header != "" {
					req.Header.Set("X-Service-Version", tt.header)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode == 503 {
					names["503"]++
				} else {
					var s seen
					_ = json.NewDecoder(resp.Body).Decode(&s)
					names[s.Name]++
				}
				resp.Body.Close()
			}
			switch tt.want {
			case "any":
				if names["v1"] != 5 || names["v2"] != 5 {
					t.Fatalf("fallback to all: got %v, want 5 each", names)
				}
			default:
				if names[tt.want] != 10 {
					t.Fatalf("got %v, want all 10 on %s", names, tt.want)
				}
			}
		})
	}
}

func TestProxyRoundRobinSpreads(t *testing.T) {
	a, b := upstream(t, echo("a")), upstream(t, echo("b"))
	_, front := newProxy(t, []discovery.Instance{instanceOf(t, a), instanceOf(t, b)})
	names := map[string]int{}
	for range 20 {
		req, _ := http.NewRequest("GET", front.URL+"/", nil)
		names[doSeen(t, req).Name]++
	}
	if names["a"] != 10 || names["b"] != 10 {
		t.Fatalf("round robin over two instances: %v", names)
	}
}

// manualResolver delivers instance sets when the test says so.
type manualResolver struct {
	fn      func([]discovery.Instance)
	stopped bool
}

func TestProxyReadyAndUpdates(t *testing.T) {
	a, b := upstream(t, echo("a")), upstream(t, echo("b"))
	res := &manualResolver{}
	p, err := discovery.NewProxy(res, "svc")
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	defer front.Close()
	select {
	case <-p.Ready():
		t.Fatal("ready before the resolver delivered anything")
	default:
	}
	if code := get(t, front.URL); code != http.StatusServiceUnavailable {
		t.Fatalf("status %d before the first set, want 503", code)
	}
	res.fn([]discovery.Instance{instanceOf(t, a)})
	select {
	case <-p.Ready():
	default:
		t.Fatal("not ready after the first set")
	}
	req, _ := http.NewRequest("GET", front.URL, nil)
	if s := doSeen(t, req); s.Name != "a" {
		t.Fatalf("routed to %q", s.Name)
	}
	res.fn([]discovery.Instance{instanceOf(t, b)})
	req, _ = http.NewRequest("GET", front.URL, nil)
	if s := doSeen(t, req); s.Name != "b" {
		t.Fatalf("after the update routed to %q", s.Name)
	}
	res.fn(nil)
	if code := get(t, front.URL); code != http.StatusServiceUnavailable {
		t.Fatalf("status %d with no instances, want 503", code)
	}
	_ = p.Close()
	if !res.stopped {
		t.Fatal("Close did not stop the watch")
	}
	res.fn([]discovery.Instance{instanceOf(t, a)}) // a late delivery after Close is ignored
	if len(p.Instances()) != 0 {
		t.Fatal("closed proxy accepted an update")
	}
}

func (m *manualResolver) Instances(context.Context, string) ([]discovery.Instance, error) {
	return nil, nil
}

func (m *manualResolver) Watch(_ string, fn func([]discovery.Instance)) (func(), error) {
	m.fn = fn
	return func() { m.stopped = true }, nil
}
