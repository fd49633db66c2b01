package grpcresolver_test

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gatewaykit/gatewaykit/transcode/grpcresolver"
	"github.com/gatewaykit/gatewaykit/transcode/internal/testpb"
)

// Resolve "svc:///echo" through a lookup function, as an adapter over package discovery would.
func Example() {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := grpc.NewServer()
	testpb.RegisterEchoServiceServer(srv, numbered{n: 7})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	instances := map[string][]string{"echo": {lis.Addr().String()}} // stands in for discovery
	b, err := grpcresolver.New("svc", func(_ context.Context, service string) ([]string, error) {
		return instances[service], nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	cc, err := grpc.NewClient("svc:///echo", grpc.WithResolvers(b), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cc.Close()
	resp, err := testpb.NewEchoServiceClient(cc).Echo(context.Background(), &testpb.EchoRequest{})
	fmt.Println(resp.GetIndex(), err)
	// Output: 7 <nil>
}
