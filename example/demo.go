package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// demoServer is one in-process demo service behind a real loopback socket, so every hop from the
// gateway is real HTTP. It can be stopped and started again on the same address (the tour's
// failover step).
type demoServer struct {
	name     string // service name: "orders"
	instance string // instance ID: "orders-1"
	tags     []string
	handler  http.Handler
	address  string // host:port, fixed at the first start

	mu  sync.Mutex
	srv *http.Server // nil while stopped
}

// addr is the host:port the service listens on.
func (d *demoServer) addr() string { return d.address }

// startDemo starts instance of service name on a free loopback port. Every demo service answers
// GET /healthz.
func startDemo(name, instance string, tags []string, h http.Handler) (*demoServer, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "instance": instance})
	})
	mux.Handle("/", h)
	d := &demoServer{name: name, instance: instance, tags: tags, handler: withInstance(instance, mux), address: "127.0.0.1:0"}
	if err := d.start(); err != nil {
		return nil, err
	}
	return d, nil
}

// start serves the instance again (no-op when running).
func (d *demoServer) start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.srv != nil {
		return nil
	}
	ln, err := net.Listen("tcp", d.address)
	if err != nil {
		return fmt.Errorf("demo %s: %w", d.instance, err)
	}
	d.address = ln.Addr().String()
	d.srv = &http.Server{Handler: d.handler, ReadHeaderTimeout: 5 * time.Second}
	go func(srv *http.Server) { _ = srv.Serve(ln) }(d.srv)
	return nil
}

// stop closes the instance's listener and connections at once, as a crash would (no-op when
// stopped).
func (d *demoServer) stop() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.srv == nil {
		return nil
	}
	err := d.srv.Close()
	d.srv = nil
	return err
}

// running reports whether the instance serves.
func (d *demoServer) running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.srv != nil
}

// close shuts the instance down gracefully.
func (d *demoServer) close(ctx context.Context) error {
	d.mu.Lock()
	srv := d.srv
	d.srv = nil
	d.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// order is the demo order record.
type order struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	ProductID string    `json:"product_id"`
	Quantity  int       `json:"quantity"`
	Total     float64   `json:"total"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	RequestID string    `json:"request_id,omitempty"`
}

// orderStore is shared by both orders instances, as a database would be.
type orderStore struct {
	mu     sync.Mutex
	orders []order
	next   int
}

func newOrderStore() *orderStore {
	s := &orderStore{next: 1000}
	base := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	for i, u := range []string{"alice", "alice", "bob", "alice", "carol"} {
		s.add(order{UserID: u, ProductID: "p" + strconv.Itoa(1+i%3), Quantity: 1 + i%2, Total: 19.5 * float64(1+i), Status: "shipped", CreatedAt: base.Add(time.Duration(i) * time.Hour)})
	}
	return s
}

func (s *orderStore) add(o order) order {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	o.ID = "o" + strconv.Itoa(s.next)
	s.orders = append(s.orders, o)
	return o
}

func (s *orderStore) forUser(user string, limit int) []order {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []order{}
	for i := len(s.orders) - 1; i >= 0 && len(out) < limit; i-- {
		if user == "" || s.orders[i].UserID == user {
			out = append(out, s.orders[i])
		}
	}
	return out
}

func (s *orderStore) get(id string) (order, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.orders {
		if o.ID == id {
			return o, true
		}
	}
	return order{}, false
}

// ordersHandler serves GET /orders?user_id=, GET /orders/{id}, POST /orders. The instance name is
// returned in X-Instance so the tour can show load balancing and failover.
func ordersHandler(store *orderStore) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders", func(w http.ResponseWriter, r *http.Request) {
		limit := 10
		if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 && n <= 100 {
			limit = n
		}
		writeJSON(w, 200, map[string]any{"orders": store.forUser(r.URL.Query().Get("user_id"), limit)})
	})
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		o, ok := store.get(r.PathValue("id"))
		if !ok {
			writeJSON(w, 404, map[string]string{"error": "order not found"})
			return
		}
		writeJSON(w, 200, o)
	})
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var o order
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&o); err != nil {
			writeJSON(w, 400, map[string]string{"error": "malformed order"})
			return
		}
		if o.UserID == "" { // the gateway injects it; the service trusts only the gateway
			o.UserID = r.Header.Get("X-User-ID")
		}
		o.Status, o.CreatedAt, o.RequestID = "created", time.Now().UTC(), r.Header.Get("X-Request-ID")
		writeJSON(w, 201, store.add(o))
	})
	return mux
}

func withInstance(instance string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Instance", instance)
		h.ServeHTTP(w, r)
	})
}

type product struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Price       float64  `json:"price"`
	Currency    string   `json:"currency"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
	Version     string   `json:"api_version"`
	Stock       int      `json:"stock,omitempty"`
}

var demoProducts = []product{
	{ID: "p1", Name: "Trail running shoes", Price: 119, Currency: "EUR", Description: "Light shoes for rough trails.", Tags: []string{"running", "outdoor"}},
	{ID: "p2", Name: "Rain jacket", Price: 89.9, Currency: "EUR", Description: "Packable, breathable, waterproof.", Tags: []string{"outdoor"}},
	{ID: "p3", Name: "Water bottle", Price: 14.5, Currency: "EUR", Description: "Keeps drinks cold for 24 hours.", Tags: []string{"accessories"}},
}

// productsHandler serves GET /products and GET /products/{id}; version "v2" adds stock levels.
func productsHandler(version string) http.Handler {
	shape := func(p product) product {
		p.Version = version
		if version == "v2" {
			p.Stock = 7 * len(p.Name) % 50
		}
		return p
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /products", func(w http.ResponseWriter, r *http.Request) {
		out := make([]product, 0, len(demoProducts))
		for _, p := range demoProducts {
			out = append(out, shape(p))
		}
		writeJSON(w, 200, map[string]any{"products": out})
	})
	mux.HandleFunc("GET /products/{id}", func(w http.ResponseWriter, r *http.Request) {
		for _, p := range demoProducts {
			if p.ID == r.PathValue("id") {
				writeJSON(w, 200, shape(p))
				return
			}
		}
		writeJSON(w, 404, map[string]string{"error": "product not found"})
	})
	return mux
}

// paymentsHandler serves POST /payments and GET /payments/{id}.
func paymentsHandler() http.Handler {
	var mu sync.Mutex
	payments := map[string]map[string]any{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /payments", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			OrderID string  `json:"order_id"`
			Amount  float64 `json:"amount"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in); err != nil || in.OrderID == "" {
			writeJSON(w, 400, map[string]string{"error": "order_id and amount required"})
			return
		}
		mu.Lock()
		id := "pay" + strconv.Itoa(len(payments)+1)
		p := map[string]any{"id": id, "order_id": in.OrderID, "amount": in.Amount, "status": "authorized", "user_id": r.Header.Get("X-User-ID")}
		payments[id] = p
		mu.Unlock()
		writeJSON(w, 201, p)
	})
	mux.HandleFunc("GET /payments/{id}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		p, ok := payments[r.PathValue("id")]
		mu.Unlock()
		if !ok {
			writeJSON(w, 404, map[string]string{"error": "payment not found"})
			return
		}
		writeJSON(w, 200, p)
	})
	return mux
}

// recommendationsHandler serves GET /recommendations?user_id=.
func recommendationsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /recommendations", func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user_id")
		out := []map[string]any{}
		for i, p := range demoProducts {
			if (len(user)+i)%2 == 0 || strings.HasPrefix(user, "a") {
				out = append(out, map[string]any{"product_id": p.ID, "name": p.Name, "score": 0.9 - 0.2*float64(i)})
			}
		}
		writeJSON(w, 200, map[string]any{"user_id": user, "items": out})
	})
	return mux
}
