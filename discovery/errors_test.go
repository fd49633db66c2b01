package discovery_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/discovery"
)

func TestProxyNoInstance(t *testing.T) {
	_, front := newProxy(t, nil, discovery.WithRetryAfter(3*time.Second))
	resp, err := http.Get(front.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("status %d Retry-After %q, want 503 and 3", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if p := decodeProblem(t, resp); p.Status != 503 {
		t.Fatalf("problem %+v", p)
	}
}

// errTransport fails every round trip with err.
type errTransport struct{ err error }

var errBreakerOpen = errors.New("breaker open for 10.0.0.1:80: internal detail")

func TestProxyUpstreamErrors(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	deadInst := instanceOf(t, closed)
	closed.Close()
	slow := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	slowTransport := discovery.DefaultTransport()
	slowTransport.ResponseHeaderTimeout = 50 * time.Millisecond
	t.Cleanup(slowTransport.CloseIdleConnections)
	mapper := func(err error) *gatewaykit.Problem {
		if errors.Is(err, errBreakerOpen) {
			return gatewaykit.NewProblem(503, "the upstream service is temporarily unavailable").WithRetryAfter(10 * time.Second)
		}
		return nil
	}
	tests := []struct {
		name       string
		inst       discovery.Instance
		opts       []discovery.Option
		wantStatus int
		retryAfter string
	}{
		{"connection refused", deadInst, nil, 502, ""},
		{"response header timeout", instanceOf(t, slow), []discovery.Option{discovery.WithTransport(slowTransport)}, 504, ""},
		{"transport deadline", deadInst, []discovery.Option{discovery.WithTransport(errTransport{context.DeadlineExceeded})}, 504, ""},
		{"breaker sentinel mapped", deadInst, []discovery.Option{discovery.WithTransport(errTransport{errBreakerOpen}), discovery.WithErrorMapper(mapper)}, 503, "10"},
		{"mapper declines", deadInst, []discovery.Option{discovery.WithTransport(errTransport{errors.New("boom: secret")}), discovery.WithErrorMapper(mapper)}, 502, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, front := newProxy(t, []discovery.Instance{tt.inst}, tt.opts...)
			resp, err := http.Get(front.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := resp.Header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			p := decodeProblem(t, resp)
			for _, leak := range []string{"refused", "dial", "timeout awaiting", "secret", "internal detail", "deadline"} {
				if strings.Contains(strings.ToLower(p.Detail+p.Title), leak) {
					t.Errorf("problem leaks %q: %+v", leak, p)
				}
			}
		})
	}
}

func TestProxyCustomErrorHandler(t *testing.T) {
	var got *gatewaykit.Problem
	h := func(w http.ResponseWriter, r *http.Request, p *gatewaykit.Problem) {
		got = p
		w.WriteHeader(599)
	}
	_, front := newProxy(t, []discovery.Instance{{Address: "127.0.0.1", Port: 1}},
		discovery.WithTransport(errTransport{errBreakerOpen}), discovery.WithErrorHandler(h))
	resp, err := http.Get(front.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 599 || got == nil || got.Status != 502 || !errors.Is(got.Err, errBreakerOpen) {
		t.Fatalf("status %d problem %+v", resp.StatusCode, got)
	}
}

func (e errTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, e.err }
