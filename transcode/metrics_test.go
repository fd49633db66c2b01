package transcode_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gatewaykit/gatewaykit/transcode"
)

func TestMetrics(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			reader := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
			defer mp.Shutdown(context.Background())
			h := m.build(t, startBackend(t), transcode.WithMeterProvider(mp))
			do(h, "GET", "/v1/echo/a", "")
			do(h, "GET", "/v1/echo/b", "")
			do(h, "POST", "/v1/fail", `{"code":5}`)
			do(h, "POST", "/v1/echo/x", `{"nope":1}`)
			do(h, "GET", "/not/routed", "")

			var rm metricdata.ResourceMetrics
			if err := reader.Collect(context.Background(), &rm); err != nil {
				t.Fatal(err)
			}
			got := map[int64]int64{}
			for _, sm := range rm.ScopeMetrics {
				if sm.Scope.Name != "github.com/gatewaykit/gatewaykit/transcode" {
					continue
				}
				for _, met := range sm.Metrics {
					if met.Name != "gatewaykit.transcode.calls" {
						continue
					}
					for _, dp := range met.Data.(metricdata.Sum[int64]).DataPoints {
						mode, _ := dp.Attributes.Value(attribute.Key("transcode.mode"))
						code, _ := dp.Attributes.Value(attribute.Key("rpc.grpc.status_code"))
						if mode.AsString() != m.name {
							t.Fatalf("mode attribute %q", mode.AsString())
						}
						got[code.AsInt64()] += dp.Value
					}
				}
			}
			want := map[int64]int64{0: 2, 5: 1, 3: 1}
			if len(got) != len(want) || got[0] != 2 || got[5] != 1 || got[3] != 1 {
				t.Fatalf("calls by code %v, want %v", got, want)
			}
		})
	}
}
