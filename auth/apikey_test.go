package auth_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/internal/redistest"
)

func keyHeader(k string) http.Header { return http.Header{"X-Api-Key": {k}} }

type storeCase struct {
	name  string
	store func(t *testing.T) auth.KeyStore
}

func stores() []storeCase {
	return []storeCase{
		{"memory", func(*testing.T) auth.KeyStore { return auth.MemoryKeyStore() }},
		{"redis", func(t *testing.T) auth.KeyStore { return auth.RedisKeyStore(redistest.Start(t).Client()) }},
	}
}

func TestAPIKeysLifecycle(t *testing.T) {
	for _, sc := range stores() {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			clock := newFakeClock()
			keys, err := auth.NewAPIKeys(sc.store(t), auth.WithClock(clock.Now))
			if err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			h := keys.Wrap(rec)
			key, id, err := keys.Create(ctx, auth.KeyInfo{Subject: "shop-42", Tier: "premium", Roles: []string{"partner"}, Scopes: []string{"orders:read"}})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(key, id) {
				t.Fatalf("key %q does not carry its id %q", key, id)
			}
			// create + verify
			if w := do(t, h, keyHeader(key)); w.Code != http.StatusOK {
				t.Fatalf("verify: %d %s", w.Code, w.Body)
			}
			got := rec.id.Load()
			if got.Subject != "shop-42" || got.Tier != "premium" || got.Method != "apikey" || !got.HasRole("partner") || !got.HasScope("orders:read") {
				t.Fatalf("identity %+v", got)
			}
			// wrong secret with a valid id, unknown id, garbage
			forged := key[:len(key)-4] + "AAAA"
			for _, bad := range []string{forged, "gk_0000000000000000_" + strings.Repeat("A", 43), "hello", strings.Repeat("x", 300)} {
				w := do(t, h, keyHeader(bad))
				if w.Code != http.StatusUnauthorized {
					t.Fatalf("bad key %q: %d", bad[:5], w.Code)
				}
			}
			// two keys at once
			if w := do(t, h, http.Header{"X-Api-Key": {key, key}}); w.Code != http.StatusUnauthorized {
				t.Fatalf("duplicated header: %d", w.Code)
			}
			// rotate: both valid during the window, the old one not after it
			newKey, newID, err := keys.Rotate(ctx, id, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if newID == id || newKey == key {
				t.Fatal("rotation returned the same key")
			}
			for _, k := range []string{key, newKey} {
				if w := do(t, h, keyHeader(k)); w.Code != http.StatusOK {
					t.Fatalf("during rotation window: %d", w.Code)
				}
			}
			clock.Advance(2 * time.Hour)
			expectRejected(t, do(t, h, keyHeader(key)), http.StatusUnauthorized, auth.ErrInvalidCredential, key)
			if w := do(t, h, keyHeader(newKey)); w.Code != http.StatusOK || rec.id.Load().Subject != "shop-42" {
				t.Fatalf("new key after window: %d", w.Code)
			}
			// revoke
			if err := keys.Revoke(ctx, newID); err != nil {
				t.Fatal(err)
			}
			expectRejected(t, do(t, h, keyHeader(newKey)), http.StatusUnauthorized, auth.ErrInvalidCredential, newKey)
			// expiry
			exp, _, err := keys.Create(ctx, auth.KeyInfo{Subject: "temp", ExpiresAt: clock.Now().Add(time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			if w := do(t, h, keyHeader(exp)); w.Code != http.StatusOK {
				t.Fatalf("before expiry: %d", w.Code)
			}
			clock.Advance(2 * time.Minute)
			expectRejected(t, do(t, h, keyHeader(exp)), http.StatusUnauthorized, auth.ErrInvalidCredential, exp)
		})
	}
}

func TestAPIKeysStoredHashedInRedis(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	keys, err := auth.NewAPIKeys(auth.RedisKeyStore(rdb))
	if err != nil {
		t.Fatal(err)
	}
	key, id, err := keys.Create(context.Background(), auth.KeyInfo{Subject: "a"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rdb.Get(context.Background(), auth.RedisKeyPrefix+"{"+id+"}").Result()
	if err != nil {
		t.Fatal(err)
	}
	secret := key[strings.LastIndexByte(key, '_')+1:]
	if strings.Contains(raw, secret) {
		t.Fatal("the key's secret is stored in Redis")
	}
	sum := sha256.Sum256([]byte(key))
	if !strings.Contains(raw, hex.EncodeToString(sum[:])) {
		t.Fatalf("record %s does not hold the SHA-256", raw)
	}
}

func TestAPIKeysRedisDownFailsClosed(t *testing.T) {
	srv := redistest.Start(t)
	keys, err := auth.NewAPIKeys(auth.RedisKeyStore(srv.Client()), auth.WithStoreTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := keys.Create(context.Background(), auth.KeyInfo{Subject: "a"})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	h := keys.Wrap(rec)
	srv.Kill()
	w := do(t, h, keyHeader(key))
	expectRejected(t, w, http.StatusServiceUnavailable, auth.ErrUnavailable, key)
	if w.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if strings.Contains(strings.ToLower(w.Body.String()), "redis") || strings.Contains(w.Body.String(), "connect") {
		t.Errorf("body leaks the store error: %s", w.Body)
	}
	if rec.hits.Load() != 0 {
		t.Fatal("request passed with the store down")
	}
}

// TestAPIKeysCorruptRedisRecordFailsClosed: a record whose hash is not 64 hex digits (or not JSON)
// is answered with 503, never a panic and never a pass.
func TestAPIKeysCorruptRedisRecordFailsClosed(t *testing.T) {
	srv := redistest.Start(t)
	keys, err := auth.NewAPIKeys(auth.RedisKeyStore(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	key, id, err := keys.Create(context.Background(), auth.KeyInfo{Subject: "a"})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(key))
	good := hex.EncodeToString(sum[:])
	rec := &recorder{}
	h := keys.Wrap(rec)
	for name, record := range map[string]string{
		"hash too long":  `{"hash":"` + good + `00","info":{"sub":"a"}}`,
		"hash too short": `{"hash":"` + good[:62] + `","info":{"sub":"a"}}`,
		"hash not hex":   `{"hash":"` + strings.Repeat("zz", 32) + `","info":{"sub":"a"}}`,
		"not JSON":       `{"hash":`,
	} {
		t.Run(name, func(t *testing.T) {
			if err := srv.Client().Set(context.Background(), auth.RedisKeyPrefix+"{"+id+"}", record, 0).Err(); err != nil {
				t.Fatal(err)
			}
			w := do(t, h, keyHeader(key))
			expectRejected(t, w, http.StatusServiceUnavailable, auth.ErrUnavailable, key)
		})
	}
	if rec.hits.Load() != 0 {
		t.Fatal("a corrupt record let the request through")
	}
}

func TestAPIKeysFromBearer(t *testing.T) {
	keys, err := auth.NewAPIKeys(auth.MemoryKeyStore(), auth.APIKeyFromBearer())
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := keys.Create(context.Background(), auth.KeyInfo{Subject: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := keys.Authenticate(reqWith(bearer(key))); err != nil || id.Subject != "a" {
		t.Fatalf("bearer key: %v", err)
	}
	r := reqWith(bearer(key))
	r.Header.Set("X-API-Key", key)
	if _, err := keys.Authenticate(r); !errors.Is(err, auth.ErrAmbiguous) {
		t.Fatalf("bearer and header: %v", err)
	}
}

func TestNewAPIKeysValidation(t *testing.T) {
	if _, err := auth.NewAPIKeys(nil); err == nil {
		t.Fatal("nil store accepted")
	}
	for name, o := range map[string]auth.Option{
		"JWT option":           auth.WithAudience("api"),
		"Authorization header": auth.WithAPIKeyHeader("Authorization"),
		"bad header":           auth.WithAPIKeyHeader("X Key"),
		"zero timeout":         auth.WithStoreTimeout(0),
	} {
		if _, err := auth.NewAPIKeys(auth.MemoryKeyStore(), o); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
