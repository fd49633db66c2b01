package authtest_test

import (
	"fmt"
	"net/http"

	"github.com/gatewaykit/gatewaykit/auth/authtest"
)

// A demo identity provider: serve the issuer on a listener and mint tokens for it.
func ExampleNewServer() {
	iss, srv, err := authtest.NewServer("EdDSA")
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	tok, err := iss.Mint(map[string]any{"sub": "alice", "roles": []string{"admin"}})
	if err != nil {
		panic(err)
	}
	resp, err := http.Get(iss.JWKSURL())
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, iss.CurrentKey().ID, len(tok) > 0)

	k2, _ := iss.Rotate() // new tokens are signed by key-2; key-1 stays published
	fmt.Println(k2.ID, iss.RemoveKey("key-1"))
	// Output:
	// 200 key-1 true
	// key-2 true
}
