package breaker

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

const instrumentationName = "github.com/gatewaykit/gatewaykit/breaker"

type telemetry struct {
	b           *Breaker
	logger      *slog.Logger
	state       metric.Int64ObservableGauge
	transitions metric.Int64Counter
	rejections  metric.Int64Counter
	timeouts    metric.Int64Counter
	retries     metric.Int64Counter
	reg         metric.Registration
}

// entryAttrs are the pre-built measurement options of one upstream, so that counting a rejection,
// a timeout or a retry allocates nothing.
type entryAttrs struct {
	upstream       attribute.KeyValue
	observe        []metric.ObserveOption
	timeout        []metric.AddOption
	rejectOpen     []metric.AddOption
	rejectHalfOpen []metric.AddOption
	rejectRamp     []metric.AddOption
	retried        []metric.AddOption
	budgetExceeded []metric.AddOption
}

func newEntryAttrs(key string) entryAttrs {
	up := attribute.String("upstream", key)
	add := func(kv ...attribute.KeyValue) []metric.AddOption {
		return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(append([]attribute.KeyValue{up}, kv...)...))}
	}
	return entryAttrs{
		upstream:       up,
		observe:        []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(up))},
		timeout:        add(),
		rejectOpen:     add(attribute.String("state", Open.String())),
		rejectHalfOpen: add(attribute.String("state", HalfOpen.String())),
		rejectRamp:     add(attribute.String("state", Recovering.String())),
		retried:        add(attribute.String("decision", "retried")),
		budgetExceeded: add(attribute.String("decision", "budget_exhausted")),
	}
}

func newTelemetry(b *Breaker) (*telemetry, error) {
	m := b.cfg.meter.Meter(instrumentationName)
	t := &telemetry{b: b, logger: b.cfg.logger}
	var err error
	if t.state, err = m.Int64ObservableGauge("gatewaykit.breaker.state",
		metric.WithDescription("Breaker state per upstream: 0 closed, 1 recovering, 2 half-open, 3 open."),
		metric.WithUnit("{state}")); err != nil {
		return nil, err
	}
	if t.transitions, err = m.Int64Counter("gatewaykit.breaker.transitions",
		metric.WithDescription("Breaker state changes."), metric.WithUnit("{transition}")); err != nil {
		return nil, err
	}
	if t.rejections, err = m.Int64Counter("gatewaykit.breaker.rejections",
		metric.WithDescription("Requests rejected without reaching the upstream."), metric.WithUnit("{request}")); err != nil {
		return nil, err
	}
	if t.timeouts, err = m.Int64Counter("gatewaykit.breaker.timeouts",
		metric.WithDescription("Requests whose upstream timeout expired."), metric.WithUnit("{request}")); err != nil {
		return nil, err
	}
	if t.retries, err = m.Int64Counter("gatewaykit.breaker.retries",
		metric.WithDescription("Retry decisions for retryable failed attempts."), metric.WithUnit("{retry}")); err != nil {
		return nil, err
	}
	if t.reg, err = m.RegisterCallback(t.observe, t.state); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *telemetry) close() error { return t.reg.Unregister() }

// observe reports the state of every live breaker. It reads the states tracked by the callbacks
// (never calling into gobreaker), reporting an open breaker whose timeout passed as half-open.
func (t *telemetry) observe(_ context.Context, o metric.Observer) error {
	now := t.b.cfg.clock.Now().UnixNano()
	t.b.sweep(now)
	for _, e := range *t.b.entries.Load() {
		s := State(e.state.Load())
		if s == Open && now >= e.openedAt.Load()+int64(t.b.cfg.openTimeout) {
			s = HalfOpen
		}
		o.ObserveInt64(t.state, int64(s), e.attrs.observe...)
	}
	return nil
}

func (t *telemetry) transition(e *entry, from, to State) {
	if from == to {
		return
	}
	t.transitions.Add(context.Background(), 1, metric.WithAttributes(e.attrs.upstream,
		attribute.String("from", from.String()), attribute.String("to", to.String())))
	level := slog.LevelInfo
	if to == Open {
		level = slog.LevelWarn
	}
	t.logger.LogAttrs(context.Background(), level, "breaker state changed",
		slog.String("upstream", e.key), slog.String("from", from.String()), slog.String("to", to.String()))
}

func (t *telemetry) rejected(e *entry, s State) {
	opts := e.attrs.rejectOpen
	switch s {
	case HalfOpen:
		opts = e.attrs.rejectHalfOpen
	case Recovering:
		opts = e.attrs.rejectRamp
	}
	t.rejections.Add(context.Background(), 1, opts...)
}

func (t *telemetry) timedOut(ctx context.Context, e *entry) {
	t.timeouts.Add(ctx, 1, e.attrs.timeout...)
	spanEvent(ctx, "gatewaykit.breaker.timeout", e)
}

func (t *telemetry) retry(ctx context.Context, e *entry, allowed bool, k int) {
	if allowed {
		t.retries.Add(ctx, 1, e.attrs.retried...)
		spanEvent(ctx, "gatewaykit.breaker.retry", e, attribute.Int("retry", k))
	} else {
		t.retries.Add(ctx, 1, e.attrs.budgetExceeded...)
		spanEvent(ctx, "gatewaykit.breaker.retry_budget_exhausted", e)
	}
}

// spanEvent adds an event to the request's span, if it is recording. Only off the happy path.
func spanEvent(ctx context.Context, name string, e *entry, kv ...attribute.KeyValue) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.AddEvent(name, trace.WithAttributes(append([]attribute.KeyValue{e.attrs.upstream}, kv...)...))
}

// rejectedEvent records a rejection on the request's span.
func rejectedEvent(ctx context.Context, e *entry, oe *OpenError) {
	spanEvent(ctx, "gatewaykit.breaker.rejected", e, attribute.String("state", oe.State.String()))
}
