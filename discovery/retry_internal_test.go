package discovery

import (
	"testing"
	"time"
)

// BenchmarkRetryBudgetRequest is what retries add to every request: a monotonic clock read and
// one atomic update ("parallel": all goroutines on the same slot word).
func BenchmarkRetryBudgetRequest(b *testing.B) {
	epoch := time.Now()
	b.Run("serial", func(b *testing.B) {
		bu := newRetryBudget(DefaultRetryPolicy())
		b.ReportAllocs()
		for b.Loop() {
			bu.request(int64(time.Since(epoch)))
		}
	})
	b.Run("parallel", func(b *testing.B) {
		bu := newRetryBudget(DefaultRetryPolicy())
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				bu.request(int64(time.Since(epoch)))
			}
		})
	})
}
