package discovery_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"

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
