package jsonpath_test

import (
	"fmt"

	"github.com/gatewaykit/gatewaykit/internal/jsonpath"
)

// A mobile client's view of a user: an allow-list with a nested array path, a rename, and a
// field only admins see.
func Example() {
	sh, err := jsonpath.Compile(jsonpath.Spec{
		Allow:    []string{"id", "name", "orders[].total", "avatar_url"},
		Rename:   map[string]string{"avatar_url": "avatar"},
		Restrict: []jsonpath.Restriction{{Roles: []string{"admin"}, Paths: []string{"notes"}}},
	})
	if err != nil {
		panic(err)
	}
	doc := []byte(`{"id":7,"name":"Ada","email":"ada@example.com","avatar_url":"a.png",` +
		`"orders":[{"id":1,"total":10.5},{"id":2,"total":20}],"notes":"vip"}`)
	customer, _ := sh.Shape(nil, doc, func(role string) bool { return role == "customer" })
	admin, _ := sh.Shape(nil, doc, func(role string) bool { return role == "admin" })
	fmt.Println(string(customer))
	fmt.Println(string(admin))
	// Output:
	// {"id":7,"name":"Ada","avatar":"a.png","orders":[{"total":10.5},{"total":20}]}
	// {"id":7,"name":"Ada","avatar":"a.png","orders":[{"total":10.5},{"total":20}],"notes":"vip"}
}
