// Package grpcresolver turns any instance lookup into a gRPC name resolver, so a transcode
// Transcoder (or any grpc.ClientConn) can reach backends found by service discovery without either
// package importing the other. It is the adapter between package discovery's resolvers and gRPC:
//
//	b, err := grpcresolver.New("gatewaykit", func(ctx context.Context, service string) ([]string, error) {
//		return addressesOf(res.Resolve(ctx, service)) // "host:port" of the healthy instances
//	})
//	tr, err := transcode.NewDynamic("gatewaykit:///users", src,
//		transcode.WithDialOptions(grpc.WithResolvers(b), grpc.WithTransportCredentials(creds)))
//
// For a target "scheme:///service", the resolver calls the lookup with "service" at start, every
// RefreshInterval and when gRPC asks for re-resolution (after a connection failure), and hands the
// addresses to gRPC's load balancer. A failing or empty lookup keeps the last good address set (a
// discovery outage must not take down healthy backends); before the first good lookup it is
// reported to gRPC, so calls fail with UNAVAILABLE instead of hanging.
//
// Each resolver owns one goroutine, stopped when gRPC closes it (when the grpc.ClientConn closes).
// Failures are logged with log/slog at most once per refresh interval per target.
package grpcresolver
