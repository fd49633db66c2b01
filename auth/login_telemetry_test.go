package auth_test

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/gatewaykit/gatewaykit/auth"
)

func TestLoginMetricsAndNoTokensInLogs(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { _ = mp.Shutdown(t.Context()) })
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g := startGateway(t, auth.LoginVerifierOptions(auth.WithMeterProvider(mp), auth.WithLogger(logger)))

	c := g.browser(t)
	cb := g.startCallback(t, c, "/app/x")
	code := cb.Query().Get("code")
	bad := *cb
	q := bad.Query()
	q.Set("state", strings.Repeat("B", 43))
	bad.RawQuery = q.Encode()
	if status, _, _ := get(t, c, bad.String(), true); status != http.StatusUnauthorized {
		t.Fatalf("bad state: %d", status)
	}
	if status, _, _ := get(t, c, cb.String(), true); status != http.StatusOK {
		t.Fatalf("login: %d", status)
	}
	// A provider outage at refresh is logged (without tokens), then a refresh succeeds.
	g.op.tokenDown.Store(true)
	g.clock.Advance(4*time.Minute + 30*time.Second)
	if status, _, _ := get(t, c, g.srv.URL+"/api/x", false); status != http.StatusOK {
		t.Fatalf("due token, provider down: %d", status)
	}
	g.op.tokenDown.Store(false)
	g.clock.Advance(6 * time.Second) // past the refresh back-off
	if status, _, _ := get(t, c, g.srv.URL+"/api/x", false); status != http.StatusOK {
		t.Fatalf("refresh: %d", status)
	}
	tok, _ := g.upstreamAuth.Load().(string)

	logins := counts(t, rd, "gatewaykit.auth.logins")
	if logins["auth.outcome=ok"] != 1 || logins["auth.outcome=state"] != 1 {
		t.Fatalf("logins: %v", logins)
	}
	refreshes := counts(t, rd, "gatewaykit.auth.session.refreshes")
	if refreshes["auth.outcome=ok"] != 1 || refreshes["auth.outcome=unavailable"] != 1 {
		t.Fatalf("refreshes: %v", refreshes)
	}
	decisions := counts(t, rd, "gatewaykit.auth.decisions")
	if decisions["auth.method=session,auth.outcome=ok,auth.reason="] < 2 {
		t.Fatalf("decisions: %v", decisions)
	}
	out := logs.String()
	if !strings.Contains(out, "session refresh failed") {
		t.Fatalf("outage not logged: %s", out)
	}
	for _, secret := range []string{code, url.QueryEscape(code), strings.TrimPrefix(tok, "Bearer ")} {
		if secret != "" && strings.Contains(out, secret) {
			t.Fatalf("a code or token in the logs: %s", out)
		}
	}
}
