package auth_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/internal/redistest"
)

type conditionalCase struct {
	name  string
	store func(t *testing.T) auth.ConditionalKeyStore
}

// conditionalStores are the built-in stores, which must implement auth.ConditionalKeyStore.
func conditionalStores() []conditionalCase {
	var out []conditionalCase
	for _, sc := range stores() {
		out = append(out, conditionalCase{sc.name, func(t *testing.T) auth.ConditionalKeyStore {
			s, ok := sc.store(t).(auth.ConditionalKeyStore)
			if !ok {
				t.Fatalf("%s key store does not implement auth.ConditionalKeyStore", sc.name)
			}
			return s
		}})
	}
	return out
}

// TestConditionalKeyStoreUpdate pins down the compare-and-swap contract of the built-in stores:
// absent is ErrKeyNotFound, any difference in any field is ErrKeyChanged (and nothing is written),
// the same record is replaced. The record uses every field, a non-UTC zone and nanoseconds, so
// that the Redis store's byte comparison is shown to survive its own encode/decode round trip.
func TestConditionalKeyStoreUpdate(t *testing.T) {
	// The mutations below must cover every field; a new field needs one (and a line in sameKey).
	if n := reflect.TypeFor[auth.KeyInfo]().NumField(); n != 5 {
		t.Fatalf("KeyInfo has %d fields: extend sameKey (apikey.go) and this test", n)
	}
	if n := reflect.TypeFor[auth.StoredKey]().NumField(); n != 3 {
		t.Fatalf("StoredKey has %d fields: extend sameKey (apikey.go) and this test", n)
	}
	zone := time.FixedZone("UTC+2", 2*3600)
	exp := time.Now().Add(time.Hour).In(zone).Truncate(time.Second).Add(123456789)
	rec := auth.StoredKey{ID: "00112233aabbccdd", Hash: [32]byte{1, 2, 3},
		Info: auth.KeyInfo{Subject: "shop-42", Tier: "premium", Roles: []string{"a", "b"}, Scopes: []string{"orders:read"}, ExpiresAt: exp}}
	mutations := map[string]func(k *auth.StoredKey){
		"hash":    func(k *auth.StoredKey) { k.Hash[0] ^= 1 },
		"subject": func(k *auth.StoredKey) { k.Info.Subject += "x" },
		"tier":    func(k *auth.StoredKey) { k.Info.Tier = "free" },
		"roles":   func(k *auth.StoredKey) { k.Info.Roles = []string{"a", "b", "admin"} },
		"scopes":  func(k *auth.StoredKey) { k.Info.Scopes = nil },
		"expiry":  func(k *auth.StoredKey) { k.Info.ExpiresAt = k.Info.ExpiresAt.Add(time.Nanosecond) },
	}
	for _, sc := range conditionalStores() {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			s := sc.store(t)
			next := rec
			next.Info.ExpiresAt = exp.Add(-30 * time.Minute)
			if err := s.Update(ctx, rec, next); !errors.Is(err, auth.ErrKeyNotFound) {
				t.Fatalf("Update of an absent record: %v, want ErrKeyNotFound", err)
			}
			if _, err := s.Get(ctx, rec.ID); !errors.Is(err, auth.ErrKeyNotFound) {
				t.Fatalf("Update of an absent record created it: %v", err)
			}
			if err := s.Put(ctx, rec); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(ctx, rec.ID)
			if err != nil {
				t.Fatal(err)
			}
			for name, mutate := range mutations {
				stale := got
				stale.Info.Roles = append([]string(nil), got.Info.Roles...)
				mutate(&stale)
				if err := s.Update(ctx, stale, next); !errors.Is(err, auth.ErrKeyChanged) {
					t.Fatalf("Update with a stale %s: %v, want ErrKeyChanged", name, err)
				}
			}
			other := next
			other.ID = "ffffffffffffffff"
			if err := s.Update(ctx, got, other); err == nil {
				t.Fatal("Update to another ID accepted")
			}
			if after, err := s.Get(ctx, rec.ID); err != nil || !after.Info.ExpiresAt.Equal(exp) {
				t.Fatalf("a refused Update wrote: %+v, %v", after, err)
			}
			if err := s.Update(ctx, got, next); err != nil {
				t.Fatalf("Update of the record as read: %v", err)
			}
			if after, err := s.Get(ctx, rec.ID); err != nil || !after.Info.ExpiresAt.Equal(next.Info.ExpiresAt) {
				t.Fatalf("after Update: %+v, %v", after, err)
			}
			if err := s.Update(ctx, got, next); !errors.Is(err, auth.ErrKeyChanged) {
				t.Fatalf("second Update from the same read: %v, want ErrKeyChanged", err)
			}
		})
	}
}

// TestConditionalKeyStoreUpdateRedisExpiry: the Redis record's TTL follows the updated expiry.
func TestConditionalKeyStoreUpdateRedisExpiry(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	s := auth.RedisKeyStore(rdb).(auth.ConditionalKeyStore)
	rec := auth.StoredKey{ID: "00112233aabbccdd", Info: auth.KeyInfo{Subject: "a"}}
	if err := s.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	next := rec
	next.Info.ExpiresAt = time.Now().Add(10 * time.Minute)
	if err := s.Update(ctx, rec, next); err != nil {
		t.Fatal(err)
	}
	ttl, err := rdb.PTTL(ctx, auth.RedisKeyPrefix+"{"+rec.ID+"}").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 5*time.Minute || ttl > 10*time.Minute {
		t.Fatalf("TTL after Update %v, want about 10m", ttl)
	}
}

// plainStore hides the built-in store's Update: a custom KeyStore with Get, Put and Delete only.
// It counts Puts, so a test can see that Rotate wrote nothing.
type plainStore struct {
	auth.KeyStore
	mu   sync.Mutex
	puts []string
}

func (s *plainStore) Put(ctx context.Context, k auth.StoredKey) error {
	s.mu.Lock()
	s.puts = append(s.puts, k.ID)
	s.mu.Unlock()
	return s.KeyStore.Put(ctx, k)
}

// TestRotateFailsClosedWithoutConditionalStore: with a store that cannot compare-and-swap, Rotate
// with a window refuses before writing anything (it could otherwise resurrect a key revoked
// meanwhile); Rotate with window 0 (create, then delete) needs no conditional write and works.
func TestRotateFailsClosedWithoutConditionalStore(t *testing.T) {
	ctx := context.Background()
	store := &plainStore{KeyStore: auth.MemoryKeyStore()}
	if _, ok := any(store).(auth.ConditionalKeyStore); ok {
		t.Fatal("test store must not implement ConditionalKeyStore")
	}
	keys, err := auth.NewAPIKeys(store)
	if err != nil {
		t.Fatal(err)
	}
	key, id, err := keys.Create(ctx, auth.KeyInfo{Subject: "a"})
	if err != nil {
		t.Fatal(err)
	}
	store.puts = nil
	newKey, newID, err := keys.Rotate(ctx, id, time.Hour)
	if err == nil || !strings.Contains(err.Error(), "ConditionalKeyStore") {
		t.Fatalf("Rotate over a plain store: %v, want an error naming ConditionalKeyStore", err)
	}
	if newKey != "" || newID != "" || len(store.puts) != 0 {
		t.Fatalf("failed Rotate returned %q/%q, wrote %v", newKey, newID, store.puts)
	}
	if old, err := store.Get(ctx, id); err != nil || !old.Info.ExpiresAt.IsZero() {
		t.Fatalf("failed Rotate changed the old key: %+v, %v", old, err)
	}
	if _, err := keys.Authenticate(reqWith(keyHeader(key))); err != nil {
		t.Fatalf("old key after a refused Rotate: %v", err)
	}

	newKey, _, err = keys.Rotate(ctx, id, 0)
	if err != nil {
		t.Fatalf("Rotate with window 0 over a plain store: %v", err)
	}
	if _, err := keys.Authenticate(reqWith(keyHeader(key))); !errors.Is(err, auth.ErrInvalidCredential) {
		t.Fatalf("old key after Rotate(0): %v", err)
	}
	if _, err := keys.Authenticate(reqWith(keyHeader(newKey))); err != nil {
		t.Fatalf("new key after Rotate(0): %v", err)
	}
}

// pausingStore wraps a built-in store and, once armed, stops the first Get of the armed ID (after
// reading) or the first Update (before writing) until resume is closed: a deterministic window in
// which another caller revokes or rotates the key between Rotate's read and its write. It records
// the IDs of the records Rotate creates.
type pausingStore struct {
	auth.ConditionalKeyStore
	pauseGet, pauseUpdate string // armed ID, "" for none
	paused, resume        chan struct{}
	once                  sync.Once
	mu                    sync.Mutex
	puts                  []string
}

func newPausingStore(inner auth.ConditionalKeyStore) *pausingStore {
	return &pausingStore{ConditionalKeyStore: inner, paused: make(chan struct{}), resume: make(chan struct{})}
}

func (s *pausingStore) pause() {
	s.once.Do(func() {
		close(s.paused)
		<-s.resume
	})
}

func (s *pausingStore) Get(ctx context.Context, id string) (auth.StoredKey, error) {
	k, err := s.ConditionalKeyStore.Get(ctx, id)
	if id == s.pauseGet {
		s.pause()
	}
	return k, err
}

func (s *pausingStore) Update(ctx context.Context, old, next auth.StoredKey) error {
	if old.ID == s.pauseUpdate {
		s.pause()
	}
	return s.ConditionalKeyStore.Update(ctx, old, next)
}

func (s *pausingStore) Put(ctx context.Context, k auth.StoredKey) error {
	s.mu.Lock()
	s.puts = append(s.puts, k.ID)
	s.mu.Unlock()
	return s.ConditionalKeyStore.Put(ctx, k)
}

type rotateResult struct {
	key, id string
	err     error
}

// startPausedRotate runs keys.Rotate(id, window) in a goroutine and returns once it has paused in
// store, with the channel that delivers its result.
func startPausedRotate(t *testing.T, keys *auth.APIKeys, store *pausingStore, id string, window time.Duration) <-chan rotateResult {
	t.Helper()
	done := make(chan rotateResult, 1)
	go func() {
		key, newID, err := keys.Rotate(context.Background(), id, window)
		done <- rotateResult{key, newID, err}
	}()
	select {
	case <-store.paused:
	case r := <-done:
		t.Fatalf("Rotate finished without reaching the pause: %+v", r)
	case <-time.After(30 * time.Second):
		t.Fatal("Rotate did not reach the pause")
	}
	return done
}

func waitRotate(t *testing.T, store *pausingStore, done <-chan rotateResult) rotateResult {
	t.Helper()
	close(store.resume)
	select {
	case r := <-done:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("Rotate did not finish after resume")
		return rotateResult{}
	}
}

// TestRotateRevokeRace: a Revoke that lands between Rotate's read of the old record and its
// rewrite stays in force with the built-in stores, whether it lands before or after the new key is
// created. Rotate reports it (ErrKeyNotFound) and leaves no new key behind.
func TestRotateRevokeRace(t *testing.T) {
	for _, sc := range conditionalStores() {
		for _, at := range []string{"after Get", "before Update"} {
			t.Run(sc.name+"/"+at, func(t *testing.T) {
				ctx := context.Background()
				inner := sc.store(t)
				admin, err := auth.NewAPIKeys(inner)
				if err != nil {
					t.Fatal(err)
				}
				key, id, err := admin.Create(ctx, auth.KeyInfo{Subject: "a", Roles: []string{"partner"}})
				if err != nil {
					t.Fatal(err)
				}
				store := newPausingStore(inner)
				if at == "after Get" {
					store.pauseGet = id
				} else {
					store.pauseUpdate = id
				}
				// A generous store timeout: Rotate's deadline covers the pause.
				racing, err := auth.NewAPIKeys(store, auth.WithStoreTimeout(time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				done := startPausedRotate(t, racing, store, id, time.Hour)
				if err := admin.Revoke(ctx, id); err != nil {
					t.Fatal(err)
				}
				r := waitRotate(t, store, done)
				if !errors.Is(r.err, auth.ErrKeyNotFound) || r.key != "" || r.id != "" {
					t.Fatalf("Rotate racing a Revoke: %q, %q, %v; want no key and ErrKeyNotFound", r.key, r.id, r.err)
				}
				if _, err := inner.Get(ctx, id); !errors.Is(err, auth.ErrKeyNotFound) {
					t.Fatalf("revoked key %s is back after Rotate: %v", id, err)
				}
				if _, err := admin.Authenticate(reqWith(keyHeader(key))); !errors.Is(err, auth.ErrInvalidCredential) {
					t.Fatalf("revoked key authenticates after Rotate: %v", err)
				}
				store.mu.Lock()
				defer store.mu.Unlock()
				if at == "before Update" && len(store.puts) != 1 {
					t.Fatalf("Rotate created %d keys before its Update, want 1", len(store.puts))
				}
				for _, created := range store.puts {
					if _, err := inner.Get(ctx, created); !errors.Is(err, auth.ErrKeyNotFound) {
						t.Fatalf("the key created by the failed Rotate is still stored: %v", err)
					}
				}
			})
		}
	}
}

// TestRotateRotateRace: two Rotates of one key with different windows. The one that rewrites the
// old record second read it before the first wrote, so it fails (ErrKeyChanged) instead of
// lengthening the old key's life to its longer window; the shorter cap stays.
func TestRotateRotateRace(t *testing.T) {
	for _, sc := range conditionalStores() {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			clock := newFakeClock()
			inner := sc.store(t)
			admin, err := auth.NewAPIKeys(inner, auth.WithClock(clock.Now))
			if err != nil {
				t.Fatal(err)
			}
			_, id, err := admin.Create(ctx, auth.KeyInfo{Subject: "a"})
			if err != nil {
				t.Fatal(err)
			}
			store := newPausingStore(inner)
			store.pauseGet = id
			racing, err := auth.NewAPIKeys(store, auth.WithClock(clock.Now), auth.WithStoreTimeout(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			done := startPausedRotate(t, racing, store, id, 24*time.Hour)
			short, shortID, err := admin.Rotate(ctx, id, 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			r := waitRotate(t, store, done)
			if !errors.Is(r.err, auth.ErrKeyChanged) || r.key != "" {
				t.Fatalf("second Rotate: %q, %v; want no key and ErrKeyChanged", r.key, r.err)
			}
			old, err := inner.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if want := clock.Now().Add(5 * time.Minute); !old.Info.ExpiresAt.Equal(want) {
				t.Fatalf("old key expires at %v, want the shorter cap %v", old.Info.ExpiresAt, want)
			}
			if _, err := admin.Authenticate(reqWith(keyHeader(short))); err != nil {
				t.Fatalf("the successful Rotate's key: %v", err)
			}
			store.mu.Lock()
			defer store.mu.Unlock()
			for _, created := range store.puts {
				if created == shortID {
					continue
				}
				if _, err := inner.Get(ctx, created); !errors.Is(err, auth.ErrKeyNotFound) {
					t.Fatalf("the key created by the failed Rotate is still stored: %v", err)
				}
			}
		})
	}
}

// failingDelete is a built-in store whose Delete of one ID fails.
type failingDelete struct {
	auth.ConditionalKeyStore
	id string
}

func (s failingDelete) Delete(ctx context.Context, id string) error {
	if id == s.id {
		return errors.New("store down")
	}
	return s.ConditionalKeyStore.Delete(ctx, id)
}

// TestRotateWindowZeroRevokeFails: when Rotate(0) cannot delete the old key, it returns an error
// and no new key (the old key stays valid, so nothing was rotated) and deletes the new record.
func TestRotateWindowZeroRevokeFails(t *testing.T) {
	ctx := context.Background()
	inner := auth.MemoryKeyStore().(auth.ConditionalKeyStore)
	admin, err := auth.NewAPIKeys(inner)
	if err != nil {
		t.Fatal(err)
	}
	key, id, err := admin.Create(ctx, auth.KeyInfo{Subject: "a"})
	if err != nil {
		t.Fatal(err)
	}
	store := newPausingStore(failingDelete{inner, id}) // never armed: only records Puts
	keys, err := auth.NewAPIKeys(store)
	if err != nil {
		t.Fatal(err)
	}
	newKey, newID, err := keys.Rotate(ctx, id, 0)
	if err == nil || newKey != "" || newID != "" {
		t.Fatalf("Rotate(0) with a failing Delete: %q, %q, %v", newKey, newID, err)
	}
	if len(store.puts) != 1 {
		t.Fatalf("Rotate created %d keys, want 1", len(store.puts))
	}
	if _, err := inner.Get(ctx, store.puts[0]); !errors.Is(err, auth.ErrKeyNotFound) {
		t.Fatalf("the unissued key is still stored: %v", err)
	}
	if _, err := admin.Authenticate(reqWith(keyHeader(key))); err != nil {
		t.Fatalf("old key after a failed Rotate(0): %v", err)
	}
}

// TestRotateMetadataNotValidUTF8: metadata that is not valid UTF-8 (a Latin-1 subject from a
// legacy directory) is stored with its bytes replaced by U+FFFD, and Rotate with a window must
// still find the record unchanged: the Redis store's comparison must not depend on how the JSON
// spells that character (an escape when the original bytes were invalid, the raw character when
// the record is encoded again after a Get).
func TestRotateMetadataNotValidUTF8(t *testing.T) {
	for _, sc := range conditionalStores() {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			store := sc.store(t)
			keys, err := auth.NewAPIKeys(store)
			if err != nil {
				t.Fatal(err)
			}
			_, id, err := keys.Create(ctx, auth.KeyInfo{Subject: "Jos\xe9", Tier: "\xff", Roles: []string{"r\xc3"}, Scopes: []string{"\u2028<&>\ufffd"}})
			if err != nil {
				t.Fatal(err)
			}
			newKey, newID, err := keys.Rotate(ctx, id, time.Hour)
			if err != nil || newKey == "" {
				t.Fatalf("Rotate: %q, %q, %v", newKey, newID, err)
			}
			old, err := store.Get(ctx, id)
			if err != nil || old.Info.ExpiresAt.IsZero() {
				t.Fatalf("old record after Rotate: %+v, %v; want it capped", old, err)
			}
			// Twice: the rewritten record compares equal too.
			if _, _, err := keys.Rotate(ctx, id, time.Minute); err != nil {
				t.Fatalf("second Rotate: %v", err)
			}
			// A real change is still one.
			cur, err := store.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			changed := cur
			changed.Info.Subject = "Jos\ufffd\ufffd"
			if err := store.Update(ctx, changed, cur); !errors.Is(err, auth.ErrKeyChanged) {
				t.Fatalf("Update from a different subject: %v, want ErrKeyChanged", err)
			}
		})
	}
}

// TestConditionalKeyStoreUpdateRedisForms: the Redis compare is by value, not by spelling. The same
// record in another JSON form (member order, spacing, escapes) is the same; a member more or less,
// or a record that is not JSON, is a change.
func TestConditionalKeyStoreUpdateRedisForms(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	s := auth.RedisKeyStore(rdb).(auth.ConditionalKeyStore)
	rec := auth.StoredKey{ID: "00112233aabbccdd", Info: auth.KeyInfo{Subject: "é", Roles: []string{"a", "b"}}}
	hash := strings.Repeat("00", 32)
	for _, tc := range []struct {
		stored string
		want   error
	}{
		{`{"hash":"` + hash + `","info":{"sub":"é","roles":["a","b"]}}`, nil},
		{` { "info" : { "roles" : [ "a", "b" ], "sub" : "\u00e9" }, "hash" : "` + hash + `" } `, nil},
		{`{"hash":"` + hash + `","info":{"sub":"é","roles":["b","a"]}}`, auth.ErrKeyChanged},
		{`{"hash":"` + hash + `","info":{"sub":"é","roles":["a"]}}`, auth.ErrKeyChanged},
		{`{"hash":"` + hash + `","info":{"sub":"é","roles":["a","b"],"tier":"gold"}}`, auth.ErrKeyChanged},
		{`{"hash":"` + hash + `","info":{"sub":"é"}}`, auth.ErrKeyChanged},
		{`{"hash":"` + hash + `","info":{"sub":"é","roles":["a","b"]},"x":1}`, auth.ErrKeyChanged},
		{`{"hash":"` + hash + `","info":{"sub":"é","roles":["a","b"]}`, auth.ErrKeyChanged},
		{`not json`, auth.ErrKeyChanged},
	} {
		key := auth.RedisKeyPrefix + "{" + rec.ID + "}"
		if err := rdb.Set(ctx, key, tc.stored, 0).Err(); err != nil {
			t.Fatal(err)
		}
		next := rec
		next.Info.ExpiresAt = time.Now().Add(time.Hour)
		err := s.Update(ctx, rec, next)
		if !errors.Is(err, tc.want) {
			t.Fatalf("stored %s: Update: %v, want %v", tc.stored, err, tc.want)
		}
		got, _ := rdb.Get(ctx, key).Result()
		if (got == tc.stored) != (tc.want != nil) {
			t.Fatalf("stored %s: after Update %v the record is %s", tc.stored, err, got)
		}
	}
}
