package ratelimit

import (
	"context"
	"errors"
	"time"
)

// Request asks a Store to count one rule's key for one decision.
type Request struct {
	// Rule is the rule's name; stores keep each rule's counters apart.
	Rule string
	// Key identifies the counter within the rule (a user, an IP, a constant).
	Key string
	// Algorithm and Limit decide the rule.
	Algorithm Algorithm
	Limit     Limit
	// Cost is how many requests this decision counts (1 for an HTTP request). With UpTo, it is the
	// most the store may grant.
	Cost int64
	// UpTo asks the store to grant as many of Cost as the limit allows (at least 1 to admit),
	// reporting the number in Result.Granted. Used by lease mode to take a batch of quota.
	UpTo bool
}

// Result is one rule's verdict for one decision.
type Result struct {
	// Allowed reports whether this rule admitted the request. The decision admits only when every
	// rule does, and then every rule has counted it; otherwise none has.
	Allowed bool
	// Granted is how many units were counted (Cost, or with UpTo possibly fewer; 0 when the
	// decision was rejected).
	Granted int64
	// Remaining is how many more requests the rule would admit now (after this one, if admitted).
	Remaining int64
	// ResetAfter is how long until the rule's quota is fully restored (or its window resets).
	ResetAfter time.Duration
	// RetryAfter is, for a rule that rejected, how long until the same request would be admitted by
	// this rule. Zero when allowed.
	RetryAfter time.Duration
}

// Store keeps rate-limit counters. Implementations must be safe for concurrent use.
//
// Take decides reqs (at most MaxRules) atomically: when every rule admits, all are counted;
// otherwise none is (see each implementation for the exact guarantee). It fills res[i] for
// reqs[i]; len(res) >= len(reqs). now is the limiter's clock; a store may use its own clock
// instead (the Redis store uses the Redis server's TIME). An error means no decision was made: the
// limiter then applies its failure policy (FailOpen or FailClosed).
type Store interface {
	Take(ctx context.Context, now time.Time, reqs []Request, res []Result) error
}

// MaxRules is the most rules a Limiter (and one Store.Take call) accepts.
const MaxRules = 16

// ErrStoreUnavailable wraps every error a remote store returns to the limiter, so callers of Allow
// can test for it with errors.Is.
var ErrStoreUnavailable = errors.New("ratelimit: store unavailable")

// ErrTooManyRules is returned by Take for more than MaxRules requests.
var ErrTooManyRules = errors.New("ratelimit: too many rules in one decision")
