package ratelimit

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

const meterName = "github.com/gatewaykit/gatewaykit/ratelimit"

type outcomeKind uint8

const (
	kindAllowed outcomeKind = iota
	kindRejected
	kindNoKey
	kindInvalid
	kindFailOpen
	kindFailClosed
	numKinds
)

var kindNames = [numKinds]string{"allowed", "rejected", "no_key", "invalid_limit", "fail_open", "fail_closed"}

type telemetry struct {
	decisions   metric.Int64Counter
	storeErrors metric.Int64Counter
	perRule     [][numKinds][]metric.AddOption
	ruleNames   []string
	global      [numKinds][]metric.AddOption
	errOpts     [numKinds][]metric.AddOption

	logger     *slog.Logger
	logEvery   int64
	lastLog    atomic.Int64
	suppressed atomic.Int64
}

func (t *telemetry) init(mp metric.MeterProvider, logger *slog.Logger, every time.Duration, rules []compiledRule) error {
	m := mp.Meter(meterName)
	var err error
	t.decisions, err = m.Int64Counter("gatewaykit.ratelimit.decisions", metric.WithUnit("{decision}"),
		metric.WithDescription("Rate-limit decisions by outcome and binding rule."))
	if err != nil {
		return err
	}
	t.storeErrors, err = m.Int64Counter("gatewaykit.ratelimit.store.errors", metric.WithUnit("{error}"),
		metric.WithDescription("Store failures (errors and timeouts) by the failure policy applied."))
	if err != nil {
		return err
	}
	opt := func(rule string, k outcomeKind) []metric.AddOption {
		return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
			attribute.String("rule", rule), attribute.String("outcome", kindNames[k])))}
	}
	t.perRule = make([][numKinds][]metric.AddOption, len(rules))
	for i, r := range rules {
		t.ruleNames = append(t.ruleNames, r.Name)
		for k := range numKinds {
			t.perRule[i][k] = opt(r.Name, k)
		}
	}
	for k := range numKinds {
		t.global[k] = opt("", k)
		t.errOpts[k] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("policy", kindNames[k])))}
	}
	t.logger, t.logEvery = logger, int64(every)
	return nil
}

// record counts one decision against rule index i (-1: no single rule) and, when the request's
// span is recording, sets the ratelimit.rule and ratelimit.outcome attributes on it.
func (t *telemetry) record(ctx context.Context, i int, k outcomeKind) {
	opts := t.global[k]
	rule := ""
	if i >= 0 {
		opts = t.perRule[i][k]
		rule = t.ruleNames[i]
	}
	t.decisions.Add(ctx, 1, opts...)
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.String("ratelimit.rule", rule), attribute.String("ratelimit.outcome", kindNames[k]))
	}
}

// storeFailure counts and (at most once per interval) logs a store failure.
func (t *telemetry) storeFailure(ctx context.Context, err error, k outcomeKind) {
	t.record(ctx, -1, k)
	t.storeErrors.Add(ctx, 1, t.errOpts[k]...)
	now := time.Now().UnixNano()
	last := t.lastLog.Load()
	if now-last < t.logEvery || !t.lastLog.CompareAndSwap(last, now) {
		t.suppressed.Add(1)
		return
	}
	t.logger.LogAttrs(ctx, slog.LevelError, "ratelimit: store failed", slog.String("policy", kindNames[k]),
		slog.Any("error", err), slog.Int64("suppressed_since_last_log", t.suppressed.Swap(0)))
}

// Lease mode's metrics (see LeaseMeterProvider). The decision counts live in the lease shards, under
// the shard's lock that the local path holds anyway; the token counts are atomics per rule, touched
// only on the fetch and eviction paths. One callback reports them at collection.
// Not synchronous counters: an OpenTelemetry SDK Add costs 140 to 230 ns here (the limiter's own
// decision counter, Allow with the SDK minus Allow without), several times a whole local lease
// decision (40 to 70 ns).

type leaseSource uint8

const (
	leaseFromLease leaseSource = iota // decided from the local lease (no round trip of its own)
	leaseFromStore                    // decided after its own round trip to the shared store
	numLeaseSources
)

var leaseSourceNames = [numLeaseSources]string{"lease", "store"}

type leaseOutcome uint8

const (
	leaseAllowed leaseOutcome = iota
	leaseRejected
	leaseError
	numLeaseOutcomes
)

var leaseOutcomeNames = [numLeaseOutcomes]string{"allowed", "rejected", "error"}

type tokenState uint8

const (
	tokenLeased tokenState = iota
	tokenExpired
	tokenEvicted
	numTokenStates
)

var tokenStateNames = [numTokenStates]string{"leased", "expired", "evicted"}

// maxLeaseRuleNames bounds the rules counted apart (Take is public: rule names are the caller's).
const maxLeaseRuleNames = 1024

// leaseRuleTel counts one rule's leases and tokens, with its prebuilt attribute sets.
type leaseRuleTel struct {
	acquired atomic.Int64
	tokens   [numTokenStates]atomic.Int64
	acqOpts  []metric.ObserveOption
	tokOpts  [numTokenStates][]metric.ObserveOption
}

func newLeaseRuleTel(rule string) *leaseRuleTel {
	r := attribute.String("rule", rule)
	rt := &leaseRuleTel{acqOpts: []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(r))}}
	for st := range numTokenStates {
		rt.tokOpts[st] = []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(r,
			attribute.String("state", tokenStateNames[st])))}
	}
	return rt
}

type leaseTelemetry struct {
	decisions metric.Int64ObservableCounter
	acquired  metric.Int64ObservableCounter
	tokens    metric.Int64ObservableCounter
	decOpts   [numLeaseSources][numLeaseOutcomes][]metric.ObserveOption

	rules    sync.Map // rule name -> *leaseRuleTel
	mu       sync.Mutex
	nRules   int           // entries in rules, under mu
	overflow *leaseRuleTel // rule "" for names beyond maxLeaseRuleNames
}

// init creates the instruments and registers the callback that reads s's counts. The callback
// holds s weakly and is unregistered when s is garbage collected: a LeaseStore has no Close, and a
// MeterProvider must not keep every store ever created alive.
func (t *leaseTelemetry) init(s *LeaseStore, mp metric.MeterProvider) error {
	m := mp.Meter(meterName)
	var err error
	if t.decisions, err = m.Int64ObservableCounter("gatewaykit.ratelimit.lease.decisions", metric.WithUnit("{decision}"),
		metric.WithDescription("Lease-mode decisions by source (lease: no round trip of its own; store: one) and outcome.")); err != nil {
		return err
	}
	if t.acquired, err = m.Int64ObservableCounter("gatewaykit.ratelimit.lease.acquired", metric.WithUnit("{lease}"),
		metric.WithDescription("Batches of quota granted to this instance by the shared store, by rule.")); err != nil {
		return err
	}
	if t.tokens, err = m.Int64ObservableCounter("gatewaykit.ratelimit.lease.tokens", metric.WithUnit("{token}"),
		metric.WithDescription("Leased tokens by rule and state: leased, expired or evicted unspent.")); err != nil {
		return err
	}
	for src := range numLeaseSources {
		for o := range numLeaseOutcomes {
			t.decOpts[src][o] = []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(
				attribute.String("source", leaseSourceNames[src]), attribute.String("outcome", leaseOutcomeNames[o])))}
		}
	}
	t.overflow = newLeaseRuleTel("")
	ws := weak.Make(s)
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if s := ws.Value(); s != nil {
			s.observe(o)
		}
		return nil
	}, t.decisions, t.acquired, t.tokens)
	if err != nil {
		return err
	}
	runtime.AddCleanup(s, func(reg metric.Registration) { _ = reg.Unregister() }, reg)
	return nil
}

// rule returns the counters of rule, creating them on first use (a new lease: the fetch path).
func (t *leaseTelemetry) rule(name string) *leaseRuleTel {
	if rt, ok := t.rules.Load(name); ok {
		return rt.(*leaseRuleTel)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if rt, ok := t.rules.Load(name); ok {
		return rt.(*leaseRuleTel)
	}
	if t.nRules >= maxLeaseRuleNames {
		return t.overflow
	}
	rt := newLeaseRuleTel(name)
	t.rules.Store(name, rt)
	t.nRules++
	return rt
}

// observe reports s's counts: every decision source and outcome, every rule seen.
func (s *LeaseStore) observe(o metric.Observer) {
	t := &s.tel
	var dec [numLeaseSources][numLeaseOutcomes]int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for src := range numLeaseSources {
			for oc := range numLeaseOutcomes {
				dec[src][oc] += sh.decided[src][oc]
			}
		}
		sh.mu.Unlock()
	}
	for src := range numLeaseSources {
		for oc := range numLeaseOutcomes {
			o.ObserveInt64(t.decisions, dec[src][oc], t.decOpts[src][oc]...)
		}
	}
	report := func(rt *leaseRuleTel) {
		o.ObserveInt64(t.acquired, rt.acquired.Load(), rt.acqOpts...)
		for st := range numTokenStates {
			o.ObserveInt64(t.tokens, rt.tokens[st].Load(), rt.tokOpts[st]...)
		}
	}
	t.rules.Range(func(_, v any) bool { report(v.(*leaseRuleTel)); return true })
	if t.overflow.acquired.Load() != 0 { // every token count follows a lease
		report(t.overflow)
	}
}
