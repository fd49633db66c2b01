package auth_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/auth/authtest"
)

// counts collects the int64 sums of a metric by a string rendering of their attributes.
func counts(t *testing.T, rd *sdkmetric.ManualReader, name string) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				var kv []string
				for _, a := range dp.Attributes.ToSlice() {
					kv = append(kv, string(a.Key)+"="+a.Value.String())
				}
				out[strings.Join(kv, ",")] += dp.Value
			}
		}
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for the background refresh goroutine to log into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestMetricsAndLogs(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))

	iss := authtest.Start(t, "ES256")
	iss.SetDown(true)
	j := newJWT(t, auth.WithOIDC(iss.URL()), auth.WithAlgorithms("ES256"), auth.AllowInsecureHTTP(),
		auth.WithMeterProvider(mp), auth.WithLogger(logger), auth.WithUnknownKIDCooldown(20*time.Millisecond))
	if !strings.Contains(logs.String(), "initial JWKS fetch failed") {
		t.Fatalf("no warning logged: %q", logs.String())
	}
	iss.SetDown(false)
	h := j.Wrap(&recorder{})
	tok := iss.Token(t, map[string]any{"sub": "a"})
	deadline := time.Now().Add(15 * time.Second)
	for do(t, h, bearer(tok)).Code != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("keys never arrived")
		}
		time.Sleep(20 * time.Millisecond)
	}
	do(t, h, bearer("a.b.c"))
	do(t, h, nil)

	got := counts(t, rd, "gatewaykit.auth.decisions")
	if got["auth.method=jwt,auth.outcome=ok,auth.reason="] != 1 {
		t.Errorf("ok count: %v", got)
	}
	if got["auth.method=jwt,auth.outcome=rejected,auth.reason=malformed credential"] != 1 ||
		got["auth.method=jwt,auth.outcome=rejected,auth.reason=no credentials"] != 1 {
		t.Errorf("rejections: %v", got)
	}
	// The key set is installed before its fetch is counted, so a request can succeed a moment
	// before the "ok" fetch shows in the metrics: wait for it.
	fetches := counts(t, rd, "gatewaykit.auth.jwks.fetches")
	for fetches["auth.outcome=ok"] < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		fetches = counts(t, rd, "gatewaykit.auth.jwks.fetches")
	}
	if fetches["auth.outcome=error"] < 1 || fetches["auth.outcome=ok"] < 1 {
		t.Errorf("fetches: %v", fetches)
	}
}

func TestNewMiddlewareMethodLabel(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	keys, err := auth.NewAPIKeys(auth.MemoryKeyStore())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		a    auth.Authenticator
		want string
	}{{auth.First(keys), "first"}, {keys, "apikey"}} {
		g, err := auth.NewMiddleware(tc.a, auth.WithMeterProvider(mp))
		if err != nil {
			t.Fatal(err)
		}
		do(t, g.Wrap(&recorder{}), nil)
		if got := counts(t, rd, "gatewaykit.auth.decisions"); got["auth.method="+tc.want+",auth.outcome=rejected,auth.reason=no credentials"] != 1 {
			t.Errorf("%s: %v", tc.want, got)
		}
	}
}
