package guard

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ScopeName is the instrumentation scope (meter name) of the package's metrics.
const ScopeName = "github.com/gatewaykit/gatewaykit/guard"

// rejections counts rejected requests with pre-built attribute sets, so recording costs no
// allocation.
type rejections struct {
	counter metric.Int64Counter
}

func newRejections(mp metric.MeterProvider) (rejections, error) {
	c, err := mp.Meter(ScopeName).Int64Counter("gatewaykit.guard.rejections",
		metric.WithUnit("{request}"),
		metric.WithDescription("Requests rejected by a guard, by check and reason."))
	if err != nil {
		return rejections{}, fmt.Errorf("guard: creating metric: %w", err)
	}
	return rejections{counter: c}, nil
}

// reason is a pre-built measurement option for one (check, reason) pair.
type reason []metric.AddOption

func newReason(check, why string) reason {
	return reason{metric.WithAttributeSet(attribute.NewSet(
		attribute.String("guard.check", check), attribute.String("guard.reason", why)))}
}

func (m rejections) add(ctx context.Context, r reason) {
	m.counter.Add(ctx, 1, r...)
}
