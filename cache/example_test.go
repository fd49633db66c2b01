package cache_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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

// A new order changes every user's dashboard: POST /api/orders goes through InvalidateOnSuccess,
// and Invalidates names the dashboard's path, so all its entries (every user's) are dropped.
func ExampleCache_InvalidateOnSuccess() {
	c, err := cache.New(cache.TTL(time.Minute), cache.PerIdentity(),
		cache.Invalidates(func(r *http.Request) []string { return []string{"/api/dashboard"} }))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	orders := 0
	mux := http.NewServeMux()
	mux.Handle("GET /api/dashboard", c.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"orders":%d}`, orders)
	})))
	mux.Handle("POST /api/orders", c.InvalidateOnSuccess(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		orders++
		w.WriteHeader(http.StatusCreated)
	})))

	send := func(method, path string) {
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Authorization", "Bearer ...")
		req = req.WithContext(gatewaykit.WithIdentity(req.Context(), &gatewaykit.Identity{Subject: "alice", Method: "jwt"}))
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Println(strings.TrimSpace(fmt.Sprintln(method, path, rec.Code, rec.Header().Get("X-Cache"), rec.Body.String())))
	}
	send(http.MethodGet, "/api/dashboard")
	send(http.MethodGet, "/api/dashboard")
	send(http.MethodPost, "/api/orders")
	send(http.MethodGet, "/api/dashboard")
	// Output:
	// GET /api/dashboard 200 MISS {"orders":0}
	// GET /api/dashboard 200 HIT {"orders":0}
	// POST /api/orders 201
	// GET /api/dashboard 200 MISS {"orders":1}
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
