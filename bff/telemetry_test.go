package bff_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gatewaykit/gatewaykit/bff"
)

func TestTelemetry(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	h := newBFF(t, append(designVariants(), bff.WithMeterProvider(mp))...).Wrap(upstream(nil))
	serve(t, h, httptest.NewRequest("GET", "/mobile/api/users/7", nil))
	serve(t, h, httptest.NewRequest("GET", "/mobile/api/users/7", nil))
	serve(t, h, httptest.NewRequest("HEAD", "/mobile/api/users/7", nil))

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				v, _ := dp.Attributes.Value(attribute.Key("variant"))
				o, _ := dp.Attributes.Value(attribute.Key("outcome"))
				got[m.Name+"/"+v.AsString()+"/"+o.AsString()] += dp.Value
			}
		}
	}
	removed := int64(2 * (len(profile) - len(`{"id":7,"name":"Ada Lovelace","avatar":"https://cdn.example.com/a/7.png"}`)))
	for k, want := range map[string]int64{
		"gatewaykit.bff.responses/mobile/shaped":      2,
		"gatewaykit.bff.responses/mobile/passthrough": 1,
		"gatewaykit.bff.bytes_removed/mobile/":        removed,
	} {
		if got[k] != want {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], want, got)
		}
	}
}
