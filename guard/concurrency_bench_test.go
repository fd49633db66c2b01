package guard

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkConcurrencyFastPath measures a request that finds a free slot (the limit is never
// reached), for the fair-queue limiter and, in the same run, the channel-semaphore limiter it
// replaced (chanConcurrency): without a key, with one key, and with a new key per request (1000
// keys in rotation, so each request adds its key to the table and removes it), sequentially and
// from parallel goroutines.
func BenchmarkConcurrencyFastPath(b *testing.B) {
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "client-" + strconv.Itoa(i)
	}
	var n atomic.Uint64
	rotate := func(*http.Request) string { return keys[n.Add(1)%uint64(len(keys))] }
	same := func(*http.Request) string { return "client-1" }
	type wrapper interface {
		Wrap(http.Handler) http.Handler
	}
	fair := func(key func(*http.Request) string) wrapper {
		var opts []Option
		if key != nil {
			opts = append(opts, PerKey(32, key))
		}
		l, err := NewConcurrency(1024, opts...)
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	channels := func(key func(*http.Request) string) wrapper { return newChanConcurrency(1024, 32, key) }
	noop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, keying := range []struct {
		name string
		key  func(*http.Request) string
	}{{"no-key", nil}, {"one-key", same}, {"key-per-request", rotate}} {
		for _, impl := range []struct {
			name string
			new  func(func(*http.Request) string) wrapper
		}{{"chan", channels}, {"fair", fair}} {
			h := impl.new(keying.key).Wrap(noop)
			req := httptest.NewRequest("GET", "/", nil)
			b.Run(keying.name+"/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					h.ServeHTTP(nil, req)
				}
			})
			b.Run(keying.name+"/"+impl.name+"/parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						h.ServeHTTP(nil, req)
					}
				})
			})
		}
	}
}
