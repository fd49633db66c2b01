package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// maxDocument caps a JWKS, discovery or introspection response body.
const maxDocument = 1 << 20

// maxRefreshInterval caps the honoured Cache-Control max-age.
const maxRefreshInterval = 24 * time.Hour

var errCooldown = errors.New("auth: JWKS refresh in cooldown")

// remoteKeys is the JWKS cache: it fetches the key set (after OIDC discovery when configured),
// refreshes it in the background at the interval the IdP's Cache-Control max-age asks for (clamped
// to [cooldown, 24h]; the configured interval when absent), refreshes on an unknown kid at most once
// per cooldown with concurrent callers joining the one fetch in flight, and keeps the last good key
// set when a fetch fails. It is safe for concurrent use.
type remoteKeys struct {
	jwksURL   atomic.Pointer[string] // set directly or by discovery
	issuer    string                 // OIDC issuer; "" without discovery
	insecure  bool
	client    *http.Client
	timeout   time.Duration
	cooldown  time.Duration
	interval  time.Duration
	clock     func() time.Time
	log       *slog.Logger
	onRemoved func()

	set atomic.Pointer[keySet]
	// removals counts key sets installed that lost a key; it is incremented after the swap and
	// before onRemoved, so a verifier that read it before its key lookup sees it change.
	removals atomic.Uint64

	mu          sync.Mutex
	inflight    chan struct{}
	lastAttempt time.Time
	next        time.Duration // delay before the next background refresh

	fetches         metric.Int64Counter
	okAttrs, errAtt metric.AddOption

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

func newRemoteKeys(c *config, client *http.Client, mp metric.MeterProvider, onRemoved func()) (*remoteKeys, error) {
	rk := &remoteKeys{
		issuer: c.oidcIssuer, insecure: c.allowInsecure, client: client, timeout: c.fetchTimeout,
		cooldown: c.cooldown, interval: c.refreshInterval, clock: c.clock, log: c.logger, onRemoved: onRemoved,
		done: make(chan struct{}),
	}
	if c.jwksURL != "" {
		u := c.jwksURL
		rk.jwksURL.Store(&u)
	}
	var err error
	rk.fetches, err = mp.Meter(instrumentationName).Int64Counter("gatewaykit.auth.jwks.fetches",
		metric.WithUnit("{fetch}"), metric.WithDescription("JWKS (and OIDC discovery) fetches by outcome."))
	if err != nil {
		return nil, err
	}
	rk.okAttrs = metric.WithAttributeSet(attribute.NewSet(attribute.String("auth.outcome", "ok")))
	rk.errAtt = metric.WithAttributeSet(attribute.NewSet(attribute.String("auth.outcome", "error")))
	rk.ctx, rk.cancel = context.WithCancel(context.Background())
	// The first fetch is synchronous so that a healthy IdP gives keys before the first request; a
	// failure is logged and retried in the background (requests fail with ErrUnknownKey meanwhile).
	if err := rk.refresh(rk.ctx, true); err != nil {
		rk.log.Warn("auth: initial JWKS fetch failed; retrying in the background", "error", err)
	}
	go rk.loop()
	return rk, nil
}

func (rk *remoteKeys) close() {
	rk.cancel()
	<-rk.done
}

func (rk *remoteKeys) loop() {
	defer close(rk.done)
	for {
		rk.mu.Lock()
		d := rk.next
		rk.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-rk.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := rk.refresh(rk.ctx, true); err != nil && !errors.Is(err, errCooldown) {
			rk.log.Warn("auth: JWKS refresh failed; keeping the last good key set", "error", err)
		}
	}
}

// keys returns the current key set (nil before the first successful fetch).
func (rk *remoteKeys) keys() *keySet { return rk.set.Load() }

// refresh fetches the key set once. Concurrent callers join the fetch in flight (waiting at most
// until ctx ends). Unless force is set, a fetch within the cooldown of the previous attempt is
// refused with errCooldown.
func (rk *remoteKeys) refresh(ctx context.Context, force bool) error {
	rk.mu.Lock()
	if ch := rk.inflight; ch != nil {
		rk.mu.Unlock()
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	now := rk.clock()
	if !force && !rk.lastAttempt.IsZero() && now.Sub(rk.lastAttempt) < rk.cooldown {
		rk.mu.Unlock()
		return errCooldown
	}
	ch := make(chan struct{})
	rk.inflight, rk.lastAttempt = ch, now
	rk.mu.Unlock()

	next, err := rk.fetch()

	rk.mu.Lock()
	rk.inflight = nil
	if err != nil {
		next = min(rk.cooldown, rk.interval)
	}
	rk.next = next
	rk.mu.Unlock()
	if err != nil {
		rk.fetches.Add(context.Background(), 1, rk.errAtt)
	} else {
		rk.fetches.Add(context.Background(), 1, rk.okAttrs)
	}
	close(ch) // after counting, so a waiter that returns sees its fetch in the metrics
	return err
}

// fetch runs discovery when needed, then fetches and installs the key set. It returns the delay
// before the next background refresh. The fetch is detached from any request: a cancelled request
// does not abort the fetch other requests wait for.
func (rk *remoteKeys) fetch() (time.Duration, error) {
	ctx, cancel := context.WithTimeout(rk.ctx, rk.timeout)
	defer cancel()
	u := rk.jwksURL.Load()
	if u == nil {
		jwksURL, err := rk.discover(ctx)
		if err != nil {
			return 0, err
		}
		u = &jwksURL
		rk.jwksURL.Store(u)
	}
	body, hdr, err := rk.get(ctx, *u)
	if err != nil {
		return 0, err
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return 0, err
	}
	if skipped > 0 {
		rk.log.Debug("auth: JWKS keys skipped", "count", skipped)
	}
	next := newKeySet(keys)
	if prev := rk.set.Swap(next); prev.lost(next) {
		rk.removals.Add(1)
		if rk.onRemoved != nil {
			rk.onRemoved()
		}
	}
	return rk.nextRefresh(hdr.Get("Cache-Control")), nil
}

// nextRefresh honours Cache-Control max-age (no-store/no-cache mean "as soon as allowed"), clamped
// to [cooldown, 24h]; without it the configured interval applies.
func (rk *remoteKeys) nextRefresh(cc string) time.Duration {
	d := rk.interval
	if age, ok := maxAge(cc); ok {
		d = age
	}
	return min(max(d, rk.cooldown), maxRefreshInterval)
}

// maxAge parses the max-age directive of a Cache-Control header. no-cache and no-store yield 0.
func maxAge(cc string) (time.Duration, bool) {
	for part := range strings.SplitSeq(cc, ",") {
		part = strings.TrimSpace(part)
		name, val, _ := strings.Cut(part, "=")
		switch strings.ToLower(name) {
		case "no-cache", "no-store":
			return 0, true
		case "max-age":
			n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
			if err != nil || n < 0 {
				return 0, false
			}
			return time.Duration(min(n, int64(maxRefreshInterval/time.Second))) * time.Second, true
		}
	}
	return 0, false
}

// discover reads <issuer>/.well-known/openid-configuration and returns its jwks_uri, after checking
// that the document names the configured issuer (OpenID Connect Discovery 1.0, section 4.3).
func (rk *remoteKeys) discover(ctx context.Context) (string, error) {
	body, _, err := rk.get(ctx, strings.TrimSuffix(rk.issuer, "/")+"/.well-known/openid-configuration")
	if err != nil {
		return "", fmt.Errorf("OIDC discovery: %w", err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("OIDC discovery: %w", err)
	}
	if doc.Issuer != rk.issuer {
		return "", fmt.Errorf("OIDC discovery: document names issuer %q, want %q", doc.Issuer, rk.issuer)
	}
	if err := checkURL(doc.JWKSURI, rk.insecure); err != nil {
		return "", fmt.Errorf("OIDC discovery: jwks_uri: %w", err)
	}
	return doc.JWKSURI, nil
}

// get fetches a JSON document of at most maxDocument bytes.
func (rk *remoteKeys) get(ctx context.Context, u string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	return doJSON(rk.client, req)
}

// doJSON sends req and returns the body of a 200 response, capped at maxDocument.
func doJSON(client *http.Client, req *http.Request) ([]byte, http.Header, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, nil, fmt.Errorf("%s: status %d", req.URL.Redacted(), resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil {
		return nil, nil, err
	}
	if len(body) > maxDocument {
		return nil, nil, fmt.Errorf("%s: response larger than %d bytes", req.URL.Redacted(), maxDocument)
	}
	return body, resp.Header, nil
}

// newHTTPClient returns the default client for remote fetches: its own transport (closed with the
// method), an overall timeout, and no redirect to plain http unless insecure is allowed.
//
// A client given with WithHTTPClient is used through a shallow copy whose CheckRedirect first
// refuses a redirect to plain http (unless insecure is allowed) and then applies the client's own
// policy (Go's default of 10 redirects when it has none): https enforcement must not depend on the
// caller's client.
func newHTTPClient(c *config) (*http.Client, func()) {
	if c.httpClient != nil {
		hc := *c.httpClient
		own := hc.CheckRedirect
		hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" && !c.allowInsecure {
				return errors.New("redirect to a non-https URL")
			}
			if own != nil {
				return own(req, via)
			}
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			return nil
		}
		return &hc, func() {}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	hc := &http.Client{
		Transport: tr,
		Timeout:   c.fetchTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "https" && !c.allowInsecure {
				return errors.New("redirect to a non-https URL")
			}
			return nil
		},
	}
	return hc, tr.CloseIdleConnections
}
