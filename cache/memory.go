package cache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
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
//
// The middleware also keeps the generation (see Cache.Invalidate) of each path that has entries or
// was invalidated recently here, as a small item keyed by the path (decoded and cleaned; it starts
// with "/", so it never equals an entry's hex key; see markerKey), read with the entry on every
// lookup and written only with a stored entry or by an invalidation (never by a miss); an item
// evicted under memory pressure makes that path's entries misses, never stale hits.
type Memory struct {
	c    *otter.Cache[string, memItem]
	err  error
	once sync.Once
}

// memItem is an entry, or (e nil) a path marker holding the path's generation.
type memItem struct {
	e     *Entry
	ttl   time.Duration
	gen   uint64
	until int64 // markers: expiry in Unix nanoseconds (real time), to extend but never shorten
}

// markerWeight approximates the bytes of a marker item beyond its key.
const markerWeight = 96

// markerKey is the otter key of a path's generation: the path itself when it starts with "/" (no
// entry key, 64 hex characters, does), else the path after a NUL byte, for handlers that rewrote
// the path to something without a leading slash.
func markerKey(path string) string {
	if strings.HasPrefix(path, "/") {
		return path
	}
	return "\x00" + path
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
			if v.e == nil {
				return uint32(len(k) + markerWeight)
			}
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
	return it.e, nil // nil for a marker
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

// Len returns the approximate number of items: entries, and the generations of cached paths.
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

func (s *Memory) lookup(_ context.Context, path, key string) (*Entry, uint64, error) {
	if s.c == nil {
		return nil, 0, s.configErrOr()
	}
	var gen uint64
	if m, ok := s.c.GetIfPresent(markerKey(path)); ok && m.e == nil {
		gen = m.gen
	}
	it, ok := s.c.GetIfPresent(key)
	if !ok {
		return nil, gen, nil
	}
	return it.e, gen, nil
}

func (s *Memory) setIf(_ context.Context, path, key string, expected uint64, e *Entry, ttl time.Duration) error {
	if s.c == nil {
		return s.configErrOr()
	}
	if e == nil || ttl <= 0 || e.Generation == 0 {
		return nil
	}
	mk := markerKey(path)
	until := time.Now().Add(ttl).UnixNano()
	if expected == 0 {
		// The path had no generation: create it with this entry's, if it still has none.
		if _, created := s.c.SetIfAbsent(mk, memItem{gen: e.Generation, ttl: ttl, until: until}); !created {
			return nil // invalidated (or first stored by another fetch) since the fetch started
		}
		// An invalidation between here and the write leaves an entry under a generation that no
		// longer exists: never served, reclaimed by its TTL.
		s.c.Set(key, memItem{e: e, ttl: ttl})
		return nil
	}
	if m, ok := s.c.GetIfPresent(mk); !ok || m.e != nil || m.gen != expected {
		return nil // invalidated since the fetch started
	}
	s.c.Set(key, memItem{e: e, ttl: ttl}) // as above: an invalidation meanwhile orphans it
	s.c.Compute(mk, func(m memItem, found bool) (memItem, otter.ComputeOp) {
		if !found || m.e != nil || m.gen != expected || m.until >= until {
			return m, otter.CancelOp
		}
		return memItem{gen: expected, ttl: ttl, until: until}, otter.WriteOp
	})
	return nil
}

func (s *Memory) drop(_ context.Context, paths []string, ttl time.Duration) error {
	if s.c == nil {
		return s.configErrOr()
	}
	until := time.Now().Add(ttl).UnixNano()
	for _, p := range paths {
		s.c.Set(markerKey(p), memItem{gen: newGeneration(), ttl: ttl, until: until})
	}
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
