package ratelimit_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/ratelimit"
)

// The gateway's limits: 100 requests per minute per user, 1,000 (free) or 100,000 (premium) per
// day per API-key tier, and a per-service ceiling for each upstream.
func Example() {
	perService := func(service string, n int64) []ratelimit.Rule {
		return []ratelimit.Rule{
			{Name: "user", Limit: ratelimit.PerMinute(100), Key: ratelimit.BySubject()},
			{Name: "tier", Key: ratelimit.BySubject(), LimitFunc: ratelimit.ByTier(map[string]ratelimit.Limit{
				"free":    ratelimit.PerDay(1000),
				"premium": ratelimit.PerDay(100000),
			}, ratelimit.PerDay(1000))},
			{Name: "service-" + service, Limit: ratelimit.PerMinute(n), Key: ratelimit.Constant(service)},
		}
	}
	store, _ := ratelimit.NewMemoryStore() // one store shared by every route's limiter
	routes := map[string]int64{"users": 10000, "orders": 5000, "payments": 2000}
	mux := http.NewServeMux()
	for _, svc := range []string{"users", "orders", "payments"} {
		lim, err := ratelimit.New(perService(svc, routes[svc]), ratelimit.WithStore(store))
		if err != nil {
			panic(err)
		}
		upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
		mux.Handle("/api/"+svc+"/", lim.Wrap(upstream))
	}

	// auth would set the identity; here a free-tier user calls the orders service.
	r := httptest.NewRequest("GET", "/api/orders/42", nil)
	r = r.WithContext(gatewaykit.WithIdentity(r.Context(), &gatewaykit.Identity{Subject: "alice", Tier: "free"}))
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	fmt.Println(w.Code, w.Header().Get("RateLimit-Policy"), w.Header().Get("RateLimit"))
	// Output: 200 "user";q=100;w=60 "user";r=99;t=1
}

// Allow limits work that is not an HTTP request, here by a caller name inside a job.
func ExampleLimiter_Allow() {
	lim, _ := ratelimit.New([]ratelimit.Rule{{Name: "exports", Limit: ratelimit.PerHour(2), Key: ratelimit.Constant("unused")}})
	for range 3 {
		d, err := lim.Allow(context.Background(), "tenant-7")
		fmt.Println(d.Allowed, d.Remaining, err)
	}
	// Output:
	// true 1 <nil>
	// true 0 <nil>
	// false 0 <nil>
}

// Counters in Redis, shared by every gateway instance. A Redis store can fail, so the limiter
// must be told what to do then: here, admit (the limit protects capacity, not security).
func ExampleNewRedisStore() {
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:6379"}})
	defer rdb.Close()
	store, err := ratelimit.NewRedisStore(rdb)
	if err != nil {
		panic(err)
	}
	lim, err := ratelimit.New([]ratelimit.Rule{
		{Name: "user", Limit: ratelimit.PerMinute(100), Key: ratelimit.BySubject()},
	}, ratelimit.WithStore(store), ratelimit.FailOpen(), ratelimit.WithStoreTimeout(50*time.Millisecond))
	if err != nil {
		panic(err)
	}
	_ = lim // mux.Handle("/api/", gatewaykit.Chain(authn.Wrap, lim.Wrap)(proxy))
}

// The approximate mode: lease batches of 50 from Redis and spend them locally.
func ExampleNewLeaseStore() {
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:6379"}})
	defer rdb.Close()
	shared, _ := ratelimit.NewRedisStore(rdb)
	leased, _ := ratelimit.NewLeaseStore(shared, ratelimit.LeaseBatch(50), ratelimit.LeaseMaxAge(time.Second))
	lim, err := ratelimit.New([]ratelimit.Rule{
		{Name: "service-orders", Limit: ratelimit.PerMinute(50000), Key: ratelimit.Constant("orders")},
	}, ratelimit.WithStore(leased), ratelimit.FailClosed())
	fmt.Println(lim != nil, err)
	// Output: true <nil>
}
