package cache

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

const scope = "github.com/gatewaykit/gatewaykit/cache"

// Outcomes, as in X-Cache and the outcome attribute.
const (
	outHit = iota
	outMiss
	outStale
	outBypass
	outRevalidated
	outCount
)

var xcache = [outCount]string{"HIT", "MISS", "STALE", "BYPASS", "REVALIDATED"}

const (
	opGet = iota
	opSet
	opInvalidate
	opCount
)

var opNames = [opCount]string{"get", "set", "invalidate"}

// logEvery is the minimum interval between two store-failure log records of one Cache.
const logEvery = 10 * time.Second

type telemetry struct {
	requests      metric.Int64Counter
	storeErrors   metric.Int64Counter
	invalidations metric.Int64Counter
	outcomes      [outCount][]metric.AddOption // prebuilt, so Add does not allocate its variadic slice
	ops           [opCount][]metric.AddOption
	spanAttrs     [outCount][]attribute.KeyValue
	logger        *slog.Logger
	nextLog       atomic.Int64 // unix nanos before which store failures are not logged
	suppressed    atomic.Int64
}

func newTelemetry(mp metric.MeterProvider, logger *slog.Logger) (*telemetry, error) {
	m := mp.Meter(scope)
	t := &telemetry{logger: logger}
	var err error
	if t.requests, err = m.Int64Counter("gatewaykit.cache.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Requests seen by the response cache, by outcome (hit, miss, stale, bypass, revalidated).")); err != nil {
		return nil, err
	}
	if t.storeErrors, err = m.Int64Counter("gatewaykit.cache.store.errors", metric.WithUnit("{error}"),
		metric.WithDescription("Failed or timed-out store calls, by operation (get, set, invalidate); each get failure bypasses the cache, each invalidate failure leaves entries until they expire.")); err != nil {
		return nil, err
	}
	if t.invalidations, err = m.Int64Counter("gatewaykit.cache.invalidations", metric.WithUnit("{path}"),
		metric.WithDescription("Paths invalidated: by successful unsafe requests, their Location and Content-Location, Invalidates and Cache.Invalidate.")); err != nil {
		return nil, err
	}
	for i, name := range []string{"hit", "miss", "stale", "bypass", "revalidated"} {
		t.outcomes[i] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", name)))}
		t.spanAttrs[i] = []attribute.KeyValue{attribute.String("gatewaykit.cache.outcome", name)}
	}
	for i, name := range opNames {
		t.ops[i] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("op", name)))}
	}
	return t, nil
}

// count records the outcome in the counter and on the request's span (set by otelhttp), if any.
func (t *telemetry) count(ctx context.Context, outcome int) {
	t.requests.Add(ctx, 1, t.outcomes[outcome]...)
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(t.spanAttrs[outcome]...)
	}
}

// storeFailed counts a store failure and logs it (see logLimited).
func (t *telemetry) storeFailed(ctx context.Context, op int, err error) {
	t.storeErrors.Add(ctx, 1, t.ops[op]...)
	msg := "cache: store failed, serving without the cache"
	if op == opInvalidate {
		msg = "cache: invalidation failed, the entries stay until they expire"
	}
	t.logLimited(ctx, msg, slog.String("op", opNames[op]), slog.Any("error", err))
}

// logLimited logs a warning unless another one was logged by this Cache within logEvery; it
// reports the number of records suppressed since the previous one.
func (t *telemetry) logLimited(ctx context.Context, msg string, attrs ...slog.Attr) {
	now := time.Now().UnixNano()
	next := t.nextLog.Load()
	if now < next || !t.nextLog.CompareAndSwap(next, now+int64(logEvery)) {
		t.suppressed.Add(1)
		return
	}
	t.logger.LogAttrs(ctx, slog.LevelWarn, msg, append(attrs, slog.Int64("suppressed", t.suppressed.Swap(0)))...)
}
