package discovery

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const meterName = "github.com/gatewaykit/gatewaykit/discovery"

type proxyMetrics struct {
	ctx       context.Context
	picks     metric.Int64Counter
	ejections metric.Int64Counter
	errors    metric.Int64Counter
	retries   metric.Int64Counter
	reg       metric.Registration

	errNoInstance, errTimeout, errUpstream, errCanceled, errClient []metric.AddOption
	retryRetried, retryBudget, retryNoInstance                     []metric.AddOption
}

func (m *proxyMetrics) init(mp metric.MeterProvider, service string, p *Proxy) error {
	meter := mp.Meter(meterName)
	m.ctx = context.Background()
	var err error
	if m.picks, err = meter.Int64Counter("gatewaykit.discovery.picks", metric.WithUnit("{request}"),
		metric.WithDescription("Requests forwarded, by service and chosen instance.")); err != nil {
		return fmt.Errorf("discovery: metrics: %w", err)
	}
	if m.ejections, err = meter.Int64Counter("gatewaykit.discovery.ejections", metric.WithUnit("{ejection}"),
		metric.WithDescription("Instances ejected by passive health checks, by service and instance.")); err != nil {
		return fmt.Errorf("discovery: metrics: %w", err)
	}
	if m.errors, err = meter.Int64Counter("gatewaykit.discovery.errors", metric.WithUnit("{request}"),
		metric.WithDescription("Requests the proxy failed, by service and error.type (no_instance, timeout, upstream, canceled, client).")); err != nil {
		return fmt.Errorf("discovery: metrics: %w", err)
	}
	if m.retries, err = meter.Int64Counter("gatewaykit.discovery.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Retries on another instance after a connection failure, by service and outcome (retried, budget_exhausted, no_instance).")); err != nil {
		return fmt.Errorf("discovery: metrics: %w", err)
	}
	endpoints, err := meter.Int64ObservableGauge("gatewaykit.discovery.endpoints", metric.WithUnit("{instance}"),
		metric.WithDescription("Instances known to the proxy, by service and state (admitted, ejected)."))
	if err != nil {
		return fmt.Errorf("discovery: metrics: %w", err)
	}
	svc := attribute.String("service", service)
	errOpt := func(kind string) []metric.AddOption {
		return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(svc, attribute.String("error.type", kind)))}
	}
	m.errNoInstance, m.errTimeout, m.errUpstream, m.errCanceled = errOpt("no_instance"), errOpt("timeout"), errOpt("upstream"), errOpt("canceled")
	m.errClient = errOpt("client")
	retryOpt := func(outcome string) []metric.AddOption {
		return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(svc, attribute.String("outcome", outcome)))}
	}
	m.retryRetried, m.retryBudget, m.retryNoInstance = retryOpt("retried"), retryOpt("budget_exhausted"), retryOpt("no_instance")
	admitted := metric.WithAttributeSet(attribute.NewSet(svc, attribute.String("state", "admitted")))
	ejected := metric.WithAttributeSet(attribute.NewSet(svc, attribute.String("state", "ejected")))
	m.reg, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		t := p.table.Load()
		o.ObserveInt64(endpoints, int64(len(t.admitted)), admitted)
		o.ObserveInt64(endpoints, int64(len(t.all)-len(t.admitted)), ejected)
		return nil
	}, endpoints)
	if err != nil {
		return fmt.Errorf("discovery: metrics: %w", err)
	}
	return nil
}

func (m *proxyMetrics) close() {
	if m.reg != nil {
		_ = m.reg.Unregister()
	}
}
