// Command example is the e-commerce API gateway of the gatewaykit design brief, runnable with
// one command and no services installed:
//
//	go run ./example
//
// It starts demo services in-process on loopback ports (a gRPC users service, two orders and two
// products instances, payments, recommendations and an OpenID Connect identity provider) and the
// gateway in front of them on 127.0.0.1:8080. Flags move its state to Redis (-redis), its service
// discovery to Consul (-consul), replace demo services with real ones (-upstream) and the demo
// identity provider with a real one (-issuer, -jwks-url). See /work/notes/example-readme.md for the
// tour.
package main
