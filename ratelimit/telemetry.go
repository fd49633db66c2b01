package ratelimit

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

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
