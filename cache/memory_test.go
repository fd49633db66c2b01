package cache_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/cache"
)

func TestMemoryStoreBoundedByBytes(t *testing.T) {
	const maxBytes = 64 << 10
	s := cache.MemoryStore(maxBytes)
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	body := make([]byte, 1024)
	for i := range 1000 {
		if err := s.Set(ctx, strconv.Itoa(i), &cache.Entry{Status: 200, Body: body}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return s.WeightedSize() <= maxBytes && s.Len() <= 64 })
	if s.Len() == 0 {
		t.Fatal("everything was evicted")
	}
}

func TestMemoryStoreExpires(t *testing.T) {
	s := cache.MemoryStore(1 << 20)
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	if err := s.Set(ctx, "k", &cache.Entry{Status: 200}, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.Get(ctx, "k"); e == nil {
		t.Fatal("entry missing right after Set")
	}
	waitFor(t, func() bool { e, _ := s.Get(ctx, "k"); return e == nil })
}
