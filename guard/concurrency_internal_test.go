package guard

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
)

// TestConcurrencyForgetsIdleKeys: the per-key table holds only keys with requests in flight or
// waiting, so it cannot grow without bound.
func TestConcurrencyForgetsIdleKeys(t *testing.T) {
	l, err := NewConcurrency(8, PerKey(1, func(r *http.Request) string { return r.Header.Get("K") }))
	if err != nil {
		t.Fatal(err)
	}
	h := l.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("K", strconv.Itoa(i%17))
			h.ServeHTTP(httptest.NewRecorder(), req)
		})
	}
	wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.keys) != 0 {
		t.Fatalf("%d keys left in the table", len(l.keys))
	}
}
