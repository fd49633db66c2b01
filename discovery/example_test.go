package discovery_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"

	"github.com/hashicorp/consul/api"

	"github.com/gatewaykit/gatewaykit/discovery"
)

func Example() {
	// Two versions of a products service.
	v1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "v1 %s", r.URL.Path)
	}))
	defer v1.Close()
	v2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "v2 %s", r.URL.Path)
	}))
	defer v2.Close()
	inst := func(s *httptest.Server, tag string) discovery.Instance {
		host, port, _ := net.SplitHostPort(s.Listener.Addr().String())
		p, _ := strconv.Atoi(port)
		return discovery.Instance{Address: host, Port: p, Tags: []string{tag}}
	}

	res, err := discovery.NewStatic(map[string][]discovery.Instance{
		"products": {inst(v1, "v1"), inst(v2, "v2")},
	})
	if err != nil {
		panic(err)
	}
	defer res.Close()
	products, err := discovery.NewProxy(res, "products",
		discovery.WithBalancer(discovery.P2C()),
		discovery.StripPrefix("/api"),
		discovery.RouteByHeader("X-Service-Version", discovery.FallbackTag("v1")))
	if err != nil {
		panic(err)
	}
	defer products.Close()
	gw := httptest.NewServer(products)
	defer gw.Close()

	for _, version := range []string{"", "v2"} {
		req, _ := http.NewRequest("GET", gw.URL+"/api/products/42", nil)
		if version != "" {
			req.Header.Set("X-Service-Version", version)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(body))
	}
	// Output:
	// v1 /products/42
	// v2 /products/42
}

// Sticky routing: requests of the same user reach the same instance.
func ExampleConsistentHash() {
	var insts []discovery.Instance
	for i := range 4 {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, i)
		}))
		defer s.Close()
		host, port, _ := net.SplitHostPort(s.Listener.Addr().String())
		p, _ := strconv.Atoi(port)
		insts = append(insts, discovery.Instance{ID: "cart-" + strconv.Itoa(i), Address: host, Port: p})
	}
	res, _ := discovery.NewStatic(map[string][]discovery.Instance{"cart": insts})
	defer res.Close()
	cart, err := discovery.NewProxy(res, "cart",
		discovery.WithBalancer(discovery.ConsistentHash(discovery.CookieKey("session"))))
	if err != nil {
		panic(err)
	}
	defer cart.Close()

	first := map[string]string{}
	sticky := true
	for round := range 3 {
		for _, session := range []string{"alice", "bob", "carol"} {
			req := httptest.NewRequest("GET", "/cart", nil)
			req.Header.Set("Cookie", "session="+session)
			rec := httptest.NewRecorder()
			cart.ServeHTTP(rec, req)
			if round == 0 {
				first[session] = rec.Body.String()
			} else if rec.Body.String() != first[session] {
				sticky = false
			}
		}
	}
	fmt.Println("sticky:", sticky)
	// Output: sticky: true
}

// A Consul resolver. The client's address, TLS and token come from api.Config (and the
// CONSUL_HTTP_* environment variables).
func ExampleNewConsul() {
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		panic(err)
	}
	res, err := discovery.NewConsul(client, discovery.WithTags("v2"), discovery.WithDatacenter("dc1"))
	if err != nil {
		panic(err)
	}
	defer res.Close()
	orders, err := discovery.NewProxy(res, "orders",
		discovery.WithBalancer(discovery.P2C()),
		discovery.StripPrefix("/api"))
	if err != nil {
		panic(err)
	}
	defer orders.Close()
	http.Handle("/api/orders/", orders)
}

// zoneAffinity is a custom Balancer: it prefers the instances whose "zone" metadata matches the
// gateway's zone and falls back to P2C over all of them.
type zoneAffinity struct{ zone string }

func (z zoneAffinity) NewPicker(eps []*discovery.Endpoint) discovery.Picker {
	var local []*discovery.Endpoint
	for _, e := range eps {
		if e.Instance().Meta["zone"] == z.zone {
			local = append(local, e)
		}
	}
	if len(local) == 0 {
		local = eps
	}
	return discovery.P2C().NewPicker(local) // all the work is done here, once per change
}

func ExampleBalancer() {
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "eu-1a") }))
	defer a.Close()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "eu-1b") }))
	defer b.Close()
	inst := func(s *httptest.Server, zone string) discovery.Instance {
		host, port, _ := net.SplitHostPort(s.Listener.Addr().String())
		p, _ := strconv.Atoi(port)
		return discovery.Instance{Address: host, Port: p, Meta: map[string]string{"zone": zone}}
	}
	res, _ := discovery.NewStatic(map[string][]discovery.Instance{"search": {inst(a, "eu-1a"), inst(b, "eu-1b")}})
	defer res.Close()
	search, err := discovery.NewProxy(res, "search", discovery.WithBalancer(zoneAffinity{zone: "eu-1b"}))
	if err != nil {
		panic(err)
	}
	defer search.Close()
	for range 3 {
		rec := httptest.NewRecorder()
		search.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		fmt.Println(rec.Body.String())
	}
	// Output:
	// eu-1b
	// eu-1b
	// eu-1b
}
