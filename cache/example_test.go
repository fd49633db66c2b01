package cache_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/cache"
)

// The dashboard of the design brief: each user's aggregate is cached for 60 seconds, for that user
// only.
func Example() {
	c, err := cache.New(cache.TTL(time.Minute), cache.PerIdentity(),
		cache.WithStore(cache.MemoryStore(64<<20)))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	calls := 0
	dashboard := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		id, _ := gatewaykit.IdentityFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"user":%q,"render":%d}`, id.Subject, calls)
	})
	h := c.Wrap(dashboard)

	for _, user := range []string{"alice", "bob", "alice"} {
		req := httptest.NewRequest(http.MethodGet, "/api/dashboard", nil)
		req.Header.Set("Authorization", "Bearer ...")
		req = req.WithContext(gatewaykit.WithIdentity(req.Context(), &gatewaykit.Identity{Subject: user, Method: "jwt"}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body, _ := io.ReadAll(rec.Body)
		fmt.Println(rec.Header().Get("X-Cache"), string(body))
	}
	// Output:
	// MISS {"user":"alice","render":1}
	// MISS {"user":"bob","render":2}
	// HIT {"user":"alice","render":1}
}

// Entries in Redis are shared by every gateway instance using the same client and prefix.
func ExampleRedisStore() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	c, err := cache.New(
		cache.WithStore(cache.RedisStore(rdb, cache.KeyPrefix("shop:cache:"))),
		cache.TTL(30*time.Second),
		cache.StoreTimeout(20*time.Millisecond), // a slow Redis means a bypass, never a slow request
	)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	_ = c.Wrap(http.NotFoundHandler())
}
