package main

import (
	"fmt"
	"io"
)

// printBanner writes the start-up banner: where the gateway listens, how to get a credential and
// three requests to try.
func printBanner(out io.Writer, addr string, cfg Config, g *gateway) {
	base := "http://" + addr
	fmt.Fprintf(out, "\ngatewaykit example gateway on %s\n", base)
	if g.idpURL != "" {
		fmt.Fprintf(out, "  demo identity provider %s (DEMO MODE: anyone can mint a token)\n", g.idpURL)
		fmt.Fprintf(out, "  token:   TOKEN=$(curl -s -H 'Accept: text/plain' '%s/demo/token?sub=alice&roles=customer&tier=free')\n", base)
	} else {
		fmt.Fprintf(out, "  tokens from %s%s\n", cfg.Issuer, cfg.JWKSURL)
	}
	fmt.Fprintf(out, "  API keys: free %s\n            premium %s\n", g.keys["free"], g.keys["premium"])
	fmt.Fprintf(out, "  try:\n")
	fmt.Fprintf(out, "    curl -H \"Authorization: Bearer $TOKEN\" %s/api/users/alice\n", base)
	fmt.Fprintf(out, "    curl -i -H \"Authorization: Bearer $TOKEN\" %s/api/dashboard\n", base)
	fmt.Fprintf(out, "    curl -H 'X-API-Key: %s' %s/mobile/api/orders\n\n", g.keys["free"], base)
}
