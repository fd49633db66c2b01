package auth_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/auth"
)

// A logout token accepted within the exp leeway must stay refused as a replay for as long as it
// is acceptable: its jti is remembered until exp plus the leeway (30 s by default).
func TestBackChannelLogoutReplayWithinLeeway(t *testing.T) {
	g := startGateway(t, auth.WithBackChannelLogout(nil))
	now := g.clock.Now()
	tok := g.logoutToken(t, "op-session-x", nil, map[string]any{
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(-20 * time.Second).Unix(),
	}, nil)
	if status, _, body := g.postLogout(t, tok); status != http.StatusOK {
		t.Fatalf("first use within leeway: %d %q", status, body)
	}
	g.clock.Advance(5 * time.Second)
	if status, _, body := g.postLogout(t, tok); status != http.StatusBadRequest {
		t.Fatalf("replay within leeway: %d %q", status, body)
	}
}
