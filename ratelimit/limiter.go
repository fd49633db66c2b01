package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/gatewaykit/gatewaykit"
)

// LimitFunc selects a rule's limit per request, for example by the caller's tier. ctx is the
// request's context (it carries the gatewaykit.Identity) and key the rule's key. Returning the zero
// Limit exempts the request from the rule; returning an invalid Limit fails the decision (500, or
// an error from Allow). Must be safe for concurrent use and fast (it runs on every request).
type LimitFunc func(ctx context.Context, key string) Limit

// ByTier returns a LimitFunc that picks the limit by the identity's Tier, and fallback for
// requests without an identity or with a tier not in the map. A zero fallback exempts them.
func ByTier(tiers map[string]Limit, fallback Limit) LimitFunc {
	m := make(map[string]Limit, len(tiers))
	for k, v := range tiers {
		m[k] = v
	}
	return func(ctx context.Context, _ string) Limit {
		if id, ok := gatewaykit.IdentityFrom(ctx); ok {
			if l, ok := m[id.Tier]; ok {
				return l
			}
		}
		return fallback
	}
}

// EmptyKeyPolicy says what a rule does with a request whose key is empty (no identity, a missing
// header, an unparseable client address). There is no "unlimited" policy.
type EmptyKeyPolicy uint8

const (
	// EmptyKeyDeny rejects the request with 403 (outcome "no_key"). The default.
	EmptyKeyDeny EmptyKeyPolicy = iota
	// EmptyKeyShared counts all keyless requests in one shared counter of the rule.
	EmptyKeyShared
)

// Rule is one limit applied to each request. A request is admitted only when every rule admits it,
// and a request rejected by one rule is counted by none.
type Rule struct {
	// Name identifies the rule in metrics, headers and store keys: 1 to 48 characters from
	// [A-Za-z0-9_.-], unique within a Limiter. Required.
	Name string
	// Limit is the rule's quota. Required unless LimitFunc is set.
	Limit Limit
	// LimitFunc, when set, selects the limit per request; Limit is then ignored.
	LimitFunc LimitFunc
	// Key derives the counter key from an HTTP request. Required (use Constant for one counter
	// shared by all requests). Not used by Allow, which takes the keys as arguments.
	Key KeyFunc
	// Algorithm counts requests (default GCRA).
	Algorithm Algorithm
	// EmptyKey is the policy for requests whose key is empty (default EmptyKeyDeny).
	EmptyKey EmptyKeyPolicy
}

// Decision is the outcome of one rate-limit check across all rules.
type Decision struct {
	// Allowed reports whether the request may proceed.
	Allowed bool
	// Rule is the name of the binding rule: the one that rejected (the one with the longest
	// RetryAfter when several did) or, when admitted, the one with the least remaining quota.
	// Empty when no rule applied or the store failed.
	Rule string
	// Limit is the binding rule's limit for this request.
	Limit Limit
	// Remaining is how many more requests the binding rule admits now.
	Remaining int64
	// ResetAfter is how long until the binding rule's quota is fully restored.
	ResetAfter time.Duration
	// RetryAfter is, when rejected, how long until the same request would be admitted by every
	// rule that rejected it (assuming no other traffic). Zero when admitted.
	RetryAfter time.Duration
	// FailedOpen reports that the store failed and the request was admitted by FailOpen.
	FailedOpen bool
}

// Limiter applies a set of rules to requests. It is safe for concurrent use. Close releases the
// store when the Limiter created it (the default memory store); a store passed with WithStore is
// the caller's to close.
type Limiter struct {
	rules     []compiledRule
	store     Store
	remote    bool
	fail      failPolicy
	timeout   time.Duration
	now       func() time.Time
	headers   Headers
	onError   gatewaykit.ErrorHandler
	maxKeyLen int
	pool      sync.Pool
	tel       telemetry
}

type compiledRule struct {
	Rule
}

type scratch struct {
	reqs [MaxRules]Request
	res  [MaxRules]Result
	idx  [MaxRules]int8 // rule index of reqs[i]
}

// New returns a Limiter for rules (1 to MaxRules). It validates every rule and option; with a
// store other than *MemoryStore it requires FailOpen or FailClosed.
func New(rules []Rule, opts ...Option) (*Limiter, error) {
	c := config{timeout: 100 * time.Millisecond, now: time.Now, headers: HeadersBoth, logEvery: 10 * time.Second, maxKeyLen: 128}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	if len(rules) == 0 || len(rules) > MaxRules {
		return nil, fmt.Errorf("ratelimit: %d rules: need 1..%d", len(rules), MaxRules)
	}
	l := &Limiter{fail: c.fail, timeout: c.timeout, now: c.now, headers: c.headers,
		onError: c.errorHandler.Or(), maxKeyLen: c.maxKeyLen}
	seen := map[string]bool{}
	for i, r := range rules {
		if !validName(r.Name) {
			return nil, fmt.Errorf("ratelimit: rule %d: name %q must be 1..48 characters from [A-Za-z0-9_.-]", i, r.Name)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("ratelimit: rule %q: duplicate name", r.Name)
		}
		seen[r.Name] = true
		if r.Key == nil {
			return nil, fmt.Errorf("ratelimit: rule %q: Key is nil (use Constant for a shared counter)", r.Name)
		}
		if r.EmptyKey > EmptyKeyShared {
			return nil, fmt.Errorf("ratelimit: rule %q: unknown empty-key policy %d", r.Name, r.EmptyKey)
		}
		if r.LimitFunc == nil {
			if err := r.Algorithm.validate(r.Limit); err != nil {
				return nil, fmt.Errorf("ratelimit: rule %q: %w", r.Name, err)
			}
		} else if int(r.Algorithm) >= len(algorithmNames) {
			return nil, fmt.Errorf("ratelimit: rule %q: unknown algorithm %d", r.Name, uint8(r.Algorithm))
		}
		l.rules = append(l.rules, compiledRule{Rule: r})
	}
	if c.store == nil {
		ms, err := NewMemoryStore()
		if err != nil {
			return nil, err
		}
		c.store = ms
	}
	l.store = c.store
	if _, mem := c.store.(*MemoryStore); !mem {
		l.remote = true
		if c.fail == failUnset {
			return nil, errors.New("ratelimit: this store can fail: choose FailOpen() or FailClosed()")
		}
	}
	if c.meter == nil {
		c.meter = otel.GetMeterProvider()
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if err := l.tel.init(c.meter, c.logger, c.logEvery, l.rules); err != nil {
		return nil, err
	}
	l.pool.New = func() any { return new(scratch) }
	return l, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 48 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Rules returns a copy of the limiter's rules.
func (l *Limiter) Rules() []Rule {
	out := make([]Rule, len(l.rules))
	for i, r := range l.rules {
		out[i] = r.Rule
	}
	return out
}

// ErrNoKey is returned by Allow when a rule with EmptyKeyDeny gets an empty key.
var ErrNoKey = errors.New("ratelimit: empty key")

// ErrInvalidLimit is returned when a LimitFunc returns an invalid Limit.
var ErrInvalidLimit = errors.New("ratelimit: LimitFunc returned an invalid limit")

// Allow decides one request outside HTTP (inside a handler, a gRPC interceptor, a job). keys holds
// one key per rule, in rule order, or a single key used for every rule; the rules' KeyFuncs are
// not called. ctx reaches LimitFuncs and bounds the store call.
//
// The error is nil when the store decided. On a store failure it wraps ErrStoreUnavailable and the
// Decision follows the failure policy (Allowed and FailedOpen with FailOpen, rejected with
// FailClosed). ErrNoKey and ErrInvalidLimit come with a rejected Decision.
func (l *Limiter) Allow(ctx context.Context, keys ...string) (Decision, error) {
	if len(keys) != 1 && len(keys) != len(l.rules) {
		return Decision{}, fmt.Errorf("ratelimit: Allow: %d keys for %d rules", len(keys), len(l.rules))
	}
	d, _, err := l.decide(ctx, nil, keys)
	return d, err
}

// decide evaluates all rules for r (HTTP) or keys (Allow).
func (l *Limiter) decide(ctx context.Context, r *http.Request, keys []string) (Decision, outcomeKind, error) {
	sc := l.pool.Get().(*scratch)
	d, kind, err, abandoned := l.decideWith(ctx, r, keys, sc)
	if !abandoned {
		l.pool.Put(sc)
	}
	return d, kind, err
}

// decideWith does decide's work with scratch space sc. abandoned reports that a store call timed
// out and still owns sc.
func (l *Limiter) decideWith(ctx context.Context, r *http.Request, keys []string, sc *scratch) (_ Decision, _ outcomeKind, _ error, abandoned bool) {
	n := 0
	for i := range l.rules {
		rule := &l.rules[i]
		var key string
		switch {
		case r != nil:
			key = rule.Key(r)
		case len(keys) == 1:
			key = keys[0]
		default:
			key = keys[i]
		}
		if key == "" && rule.EmptyKey == EmptyKeyDeny {
			l.tel.record(ctx, -1, kindNoKey)
			return Decision{Rule: rule.Name}, kindNoKey, ErrNoKey, false
		}
		if len(key) > l.maxKeyLen {
			sum := sha256.Sum256([]byte(key))
			key = "#" + hex.EncodeToString(sum[:16])
		}
		lim := rule.Limit
		if rule.LimitFunc != nil {
			lim = rule.LimitFunc(ctx, key)
			if lim.IsZero() {
				continue
			}
			if rule.Algorithm.validate(lim) != nil {
				l.tel.record(ctx, -1, kindInvalid)
				return Decision{Rule: rule.Name}, kindInvalid, ErrInvalidLimit, false
			}
		}
		sc.reqs[n] = Request{Rule: rule.Name, Key: key, Algorithm: rule.Algorithm, Limit: lim, Cost: 1}
		sc.idx[n] = int8(i)
		n++
	}
	if n == 0 { // every rule exempted the request (LimitFunc returned the zero Limit)
		l.tel.record(ctx, -1, kindAllowed)
		return Decision{Allowed: true}, kindAllowed, nil, false
	}
	var err error
	if ls, ok := l.store.(*LeaseStore); ok && ls.takeLocal(l.now(), sc.reqs[:n], sc.res[:n]) {
		// decided from local leases: no I/O, no goroutine
	} else if l.remote {
		// The store call runs in its own goroutine so that the timeout holds even when the client
		// ignores context deadlines (go-redis without ContextTimeoutEnabled waits for its own
		// ReadTimeout). On timeout the call is abandoned and finishes on its own.
		tctx, cancel := context.WithTimeout(ctx, l.timeout)
		done := make(chan error, 1)
		now, reqs, res := l.now(), sc.reqs[:n], sc.res[:n]
		go func() { done <- l.store.Take(tctx, now, reqs, res) }()
		select {
		case err = <-done:
		case <-tctx.Done():
			err, abandoned = tctx.Err(), true
		}
		cancel()
	} else {
		err = l.store.Take(ctx, l.now(), sc.reqs[:n], sc.res[:n])
	}
	if err != nil {
		err = storeError(err)
		if l.fail == failOpen {
			l.tel.storeFailure(ctx, err, kindFailOpen)
			return Decision{Allowed: true, FailedOpen: true}, kindFailOpen, err, abandoned
		}
		l.tel.storeFailure(ctx, err, kindFailClosed)
		return Decision{}, kindFailClosed, err, abandoned
	}
	// choose the binding rule
	best := -1
	allowed := true
	for i := 0; i < n; i++ {
		if !sc.res[i].Allowed {
			allowed = false
		}
	}
	for i := 0; i < n; i++ {
		res := &sc.res[i]
		switch {
		case best < 0:
			if allowed || !res.Allowed {
				best = i
			}
		case !allowed:
			if !res.Allowed && res.RetryAfter > sc.res[best].RetryAfter {
				best = i
			}
		case res.Remaining < sc.res[best].Remaining:
			best = i
		}
	}
	b := &sc.res[best]
	rule := &l.rules[sc.idx[best]]
	d := Decision{Allowed: allowed, Rule: rule.Name, Limit: sc.reqs[best].Limit, Remaining: b.Remaining,
		ResetAfter: b.ResetAfter, RetryAfter: b.RetryAfter}
	kind := kindAllowed
	if !allowed {
		kind = kindRejected
	}
	l.tel.record(ctx, int(sc.idx[best]), kind)
	return d, kind, nil, false
}

func storeError(err error) error {
	if errors.Is(err, ErrStoreUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
}

// Close releases resources the Limiter owns. The default memory store holds none, so Close is
// currently a no-op kept for the module's lifecycle convention; it is safe to call more than once.
func (l *Limiter) Close() error { return nil }
