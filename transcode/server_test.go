package transcode_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/gatewaykit/gatewaykit/transcode"
	"github.com/gatewaykit/gatewaykit/transcode/internal/testpb"
)

// echoServer answers with what it received, including the incoming metadata (minus the keys the
// gRPC transport adds itself), so tests can check exactly what reached the backend.
type echoServer struct {
	testpb.UnimplementedEchoServiceServer
}

var transportKeys = map[string]bool{":authority": true, "content-type": true, "user-agent": true, "grpc-accept-encoding": true}

func received(ctx context.Context) map[string]string {
	md, _ := metadata.FromIncomingContext(ctx)
	out := map[string]string{}
	for k, vs := range md {
		if !transportKeys[k] {
			out[k] = strings.Join(vs, ",")
		}
	}
	return out
}

func (echoServer) Echo(ctx context.Context, req *testpb.EchoRequest) (*testpb.EchoResponse, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-served-by", "echo", "x-internal-host", "10.0.0.7"))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-checksum", "abc", "x-internal-trace", "t"))
	return &testpb.EchoResponse{Request: req, Metadata: received(ctx)}, nil
}

func (echoServer) Purge(ctx context.Context, req *testpb.EchoRequest) (*testpb.EchoResponse, error) {
	return &testpb.EchoResponse{Request: req, Index: 99}, nil
}

func (echoServer) Fail(ctx context.Context, req *testpb.FailRequest) (*testpb.EchoResponse, error) {
	if req.SleepMs > 0 {
		select {
		case <-time.After(time.Duration(req.SleepMs) * time.Millisecond):
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if req.Code == 0 {
		return &testpb.EchoResponse{}, nil
	}
	return nil, status.Error(codes.Code(req.Code), req.Message)
}

func (echoServer) Lookup(ctx context.Context, req *testpb.LookupRequest) (*testpb.Item, error) {
	return &testpb.Item{Name: req.Name, Stock: 3, Labels: []*testpb.Label{{Key: "name", Value: req.Name}}}, nil
}

func (echoServer) CreateItem(ctx context.Context, req *testpb.CreateItemRequest) (*testpb.Item, error) {
	it := req.GetItem()
	if req.ValidateOnly {
		it.Stock = -1
	}
	return it, nil
}

func (echoServer) Stream(req *testpb.StreamRequest, ss grpc.ServerStreamingServer[testpb.EchoResponse]) error {
	for i := int32(0); i < req.Count; i++ {
		if err := ss.Send(&testpb.EchoResponse{Index: i, Metadata: received(ss.Context())}); err != nil {
			return err
		}
		if req.IntervalMs > 0 {
			select {
			case <-time.After(time.Duration(req.IntervalMs) * time.Millisecond):
			case <-ss.Context().Done():
				return ss.Context().Err()
			}
		}
	}
	if req.FailCode != 0 {
		return status.Error(codes.Code(req.FailCode), "stream failed at the backend: secret detail")
	}
	return nil
}

// startBackend serves echoServer on a loopback port and returns its address.
func startBackend(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testpb.RegisterEchoServiceServer(srv, echoServer{})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}

var insecureDial = transcode.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials()))

// mode builds a Transcoder for the backend at addr with extra options.
type mode struct {
	name  string
	build func(t testing.TB, addr string, opts ...transcode.Option) *transcode.Transcoder
}

var modes = []mode{
	{"static", func(t testing.TB, addr string, opts ...transcode.Option) *transcode.Transcoder {
		t.Helper()
		tr, err := transcode.New(append([]transcode.Option{insecureDial, transcode.Register(addr, testpb.RegisterEchoServiceHandler)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	}},
	{"dynamic", func(t testing.TB, addr string, opts ...transcode.Option) *transcode.Transcoder {
		t.Helper()
		tr, err := transcode.NewDynamic(addr, transcode.ProtoFiles("internal/testpb", "echo.proto"), append([]transcode.Option{insecureDial}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	}},
}

// forEachMode runs f against a fresh backend in both modes.
func forEachMode(t *testing.T, f func(t *testing.T, build func(opts ...transcode.Option) http.Handler)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			addr := startBackend(t)
			f(t, func(opts ...transcode.Option) http.Handler { return m.build(t, addr, opts...) })
		})
	}
}

// do serves one request and returns the recorder.
func do(h http.Handler, method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
