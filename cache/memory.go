package cache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"
)

// DefaultMemoryBytes is the capacity of the memory store New creates when no store is given.
const DefaultMemoryBytes = 64 << 20

// Memory is an in-process Store bounded by bytes, with per-entry expiry. It is built on
// github.com/maypok86/otter/v2 with a weigher (the entry's body, header and key sizes plus a
// fixed overhead), so eviction follows otter's admission and eviction policy rather than plain
// LRU. Entries are shared, not copied: a Get returns the *Entry given to Set. It is safe for
// concurrent use. Close stops otter's periodic clean-up goroutine.
type Memory struct {
	c    *otter.Cache[string, memItem]
	err  error
	once sync.Once
}

type memItem struct {
	e   *Entry
	ttl time.Duration
}

// MemoryStore returns an in-memory store holding at most about maxBytes bytes of entries. A
// maxBytes below 1 KiB is a configuration error that WithStore reports (and that every call of the
// store returns). A single entry weighs at most 4 GiB.
func MemoryStore(maxBytes int64) *Memory {
	if maxBytes < 1024 {
		return &Memory{err: fmt.Errorf("cache: memory store: maxBytes must be at least 1024, got %d", maxBytes)}
	}
	c, err := otter.New(&otter.Options[string, memItem]{
		MaximumWeight: uint64(maxBytes),
		Weigher: func(k string, v memItem) uint32 {
			return uint32(min(len(k)+v.e.weight(), math.MaxUint32))
		},
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, memItem]) time.Duration {
			return e.Value.ttl
		}),
	})
	if err != nil {
		return &Memory{err: fmt.Errorf("cache: memory store: %w", err)}
	}
	return &Memory{c: c}
}

var errMemZero = errors.New("cache: memory store: not created by MemoryStore")

// Get returns the entry for key, or nil when absent or expired. It never blocks on I/O.
func (s *Memory) Get(_ context.Context, key string) (*Entry, error) {
	if s.c == nil {
		return nil, s.configErrOr()
	}
	it, ok := s.c.GetIfPresent(key)
	if !ok {
		return nil, nil
	}
	return it.e, nil
}

// Set stores e under key for ttl, replacing any previous entry.
func (s *Memory) Set(_ context.Context, key string, e *Entry, ttl time.Duration) error {
	if s.c == nil {
		return s.configErrOr()
	}
	if e == nil || ttl <= 0 {
		return nil
	}
	s.c.Set(key, memItem{e: e, ttl: ttl})
	return nil
}

// Len returns the approximate number of entries.
func (s *Memory) Len() int {
	if s.c == nil {
		return 0
	}
	return s.c.EstimatedSize()
}

// WeightedSize returns the approximate number of bytes held.
func (s *Memory) WeightedSize() uint64 {
	if s.c == nil {
		return 0
	}
	return s.c.WeightedSize()
}

// Close stops the store's background clean-up goroutine. Entries stay readable. It is idempotent
// and safe for concurrent use.
func (s *Memory) Close() error {
	s.once.Do(func() {
		if s.c != nil {
			s.c.StopAllGoroutines()
		}
	})
	return nil
}

func (s *Memory) local() {}

func (s *Memory) configErr() error { return s.err }

func (s *Memory) configErrOr() error {
	if s.err != nil {
		return s.err
	}
	return errMemZero
}
