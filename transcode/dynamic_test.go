package transcode_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/gatewaykit/gatewaykit/transcode"
	"github.com/gatewaykit/gatewaykit/transcode/grpcresolver"
	"github.com/gatewaykit/gatewaykit/transcode/internal/testpb"
)

func descriptorSetOf(fd protoreflect.FileDescriptor) []byte {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(protoreflect.FileDescriptor)
	add = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		for i := 0; i < f.Imports().Len(); i++ {
			add(f.Imports().Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
	}
	add(fd)
	b, _ := proto.Marshal(set)
	return b
}

func TestDynamicDescriptorSet(t *testing.T) {
	addr := startBackend(t)
	tr, err := transcode.NewDynamic(addr, transcode.DescriptorSet(descriptorSetOf(testpb.File_echo_proto)), insecureDial)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	req := echoResponse(t, do(tr, "PUT", "/v1/shelves/s9/echo/books/1", `["z"]`)).GetRequest()
	if req.GetShelf() != "s9" || req.GetLabel().GetValue() != "books/1" || req.GetTags()[0] != "z" {
		t.Fatalf("%v", req)
	}
}

const goodHeader = "syntax = \"proto3\";\npackage p;\nimport \"google/api/annotations.proto\";\n" +
	"message M { string id = 1; repeated string tags = 2; N n = 3; map<string,string> m = 4; }\nmessage N { string x = 1; }\n"

func svc(rules ...string) string {
	var b strings.Builder
	b.WriteString(goodHeader + "service S {\n")
	for i, r := range rules {
		b.WriteString("  rpc R" + string(rune('a'+i)) + "(M) returns (M) { option (google.api.http) = {" + r + "}; }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func TestDynamicStartupErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"syntax error names file and line", "syntax = \"proto3\";\npackage p;\n\nmessage X {\n  strin y = 1;\n}\n", "bad.proto:5:"},
		{"missing import", "syntax = \"proto3\";\nimport \"nope.proto\";\n", "nope.proto"},
		{"bad template", svc(`get: "/v1/{id"`), "bad.proto:7: p.S.Ra: path template"},
		{"unknown path field", svc(`get: "/v1/{nope}"`), `no field "nope"`},
		{"repeated path field", svc(`get: "/v1/{tags}"`), "not a singular scalar"},
		{"message path field", svc(`get: "/v1/{n}"`), "not a singular scalar"},
		{"json name in template", svc(`get: "/v1/{n.x}/{Id}"`), "no field"},
		{"unknown body field", svc(`post: "/v1/x" body: "nope"`), "body field"},
		{"unknown response_body", svc(`get: "/v1/x" response_body: "nope"`), "response_body"},
		{"duplicate route", svc(`get: "/v1/{id}"`, `get: "/v1/{id}"`), "bad.proto:8: p.S.Ra and p.S.Rb both bind"},
		{"deep wildcard not last", svc(`get: "/v1/**/x"`), `"**" must be the last`},
		{"bad custom kind", svc(`custom: {kind: "NOT A METHOD" path: "/v1/x"}`), "not an HTTP method"},
		{"no rules", goodHeader, "no method with a google.api.http rule"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{"bad.proto": {Data: []byte(tc.src)}}
			tr, err := transcode.NewDynamic("127.0.0.1:1", transcode.ProtoFS(fsys, "bad.proto"), insecureDial)
			if err == nil {
				tr.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "transcode: ") {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestConstructionErrors(t *testing.T) {
	src := transcode.ProtoFiles("internal/testpb", "echo.proto")
	reg := transcode.Register("127.0.0.1:1", testpb.RegisterEchoServiceHandler)
	build := map[string]func() (*transcode.Transcoder, error){
		"New without Register":  func() (*transcode.Transcoder, error) { return transcode.New(insecureDial) },
		"New without transport": func() (*transcode.Transcoder, error) { return transcode.New(reg) },
		"New with ServiceTarget": func() (*transcode.Transcoder, error) {
			return transcode.New(insecureDial, reg, transcode.ServiceTarget("a", "b"))
		},
		"Register without functions": func() (*transcode.Transcoder, error) { return transcode.New(insecureDial, transcode.Register("x")) },
		"Register without target": func() (*transcode.Transcoder, error) {
			return transcode.New(insecureDial, transcode.Register("", testpb.RegisterEchoServiceHandler))
		},
		"NewDynamic without target": func() (*transcode.Transcoder, error) { return transcode.NewDynamic("", src, insecureDial) },
		"NewDynamic zero source": func() (*transcode.Transcoder, error) {
			return transcode.NewDynamic("x", transcode.Source{}, insecureDial)
		},
		"NewDynamic with Register":     func() (*transcode.Transcoder, error) { return transcode.NewDynamic("x", src, insecureDial, reg) },
		"NewDynamic without transport": func() (*transcode.Transcoder, error) { return transcode.NewDynamic("127.0.0.1:1", src) },
		"NewDynamic unknown service": func() (*transcode.Transcoder, error) {
			return transcode.NewDynamic("x", src, insecureDial, transcode.ServiceTarget("no.Such", "y"))
		},
		"NewDynamic Services unknown": func() (*transcode.Transcoder, error) {
			return transcode.NewDynamic("x", src, insecureDial, transcode.Services("no.Such"))
		},
		"NewDynamic Services empty": func() (*transcode.Transcoder, error) {
			return transcode.NewDynamic("x", src, insecureDial, transcode.Services())
		},
		"New with Services": func() (*transcode.Transcoder, error) {
			return transcode.New(insecureDial, reg, transcode.Services("a"))
		},
		"NewDynamic no files": func() (*transcode.Transcoder, error) {
			return transcode.NewDynamic("x", transcode.ProtoFiles("internal/testpb"), insecureDial)
		},
		"NewDynamic missing file": func() (*transcode.Transcoder, error) {
			return transcode.NewDynamic("x", transcode.ProtoFiles("internal/testpb", "nope.proto"), insecureDial)
		},
		"NewDynamic garbage set": func() (*transcode.Transcoder, error) {
			return transcode.NewDynamic("x", transcode.DescriptorSet([]byte("\xff\xff")), insecureDial)
		},
		"Timeout zero": func() (*transcode.Transcoder, error) { return transcode.New(insecureDial, reg, transcode.Timeout(0)) },
		"MaxBodyBytes zero": func() (*transcode.Transcoder, error) {
			return transcode.New(insecureDial, reg, transcode.MaxBodyBytes(0))
		},
		"bad subject key": func() (*transcode.Transcoder, error) {
			return transcode.New(insecureDial, reg, transcode.SubjectKey("X-User"))
		},
		"grpc- response header": func() (*transcode.Transcoder, error) {
			return transcode.New(insecureDial, reg, transcode.ResponseHeaders("grpc-status"))
		},
		"nil error handler": func() (*transcode.Transcoder, error) {
			return transcode.New(insecureDial, reg, transcode.WithErrorHandler(nil))
		},
		"nil option": func() (*transcode.Transcoder, error) { return transcode.New(insecureDial, reg, nil) },
		"nil meter provider": func() (*transcode.Transcoder, error) {
			return transcode.New(insecureDial, reg, transcode.WithMeterProvider(nil))
		},
		"nil logger": func() (*transcode.Transcoder, error) {
			return transcode.New(insecureDial, reg, transcode.WithLogger(nil))
		},
		"WithClientConn without conn": func() (*transcode.Transcoder, error) {
			return transcode.New(insecureDial, reg, transcode.WithClientConn("x", nil))
		},
		"register function that errors": func() (*transcode.Transcoder, error) {
			return transcode.New(insecureDial, transcode.Register("x", failingRegister))
		},
	}
	for name, b := range build {
		t.Run(name, func(t *testing.T) {
			tr, err := b()
			if err == nil {
				tr.Close()
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "transcode: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
}

func failingRegister(context.Context, *runtime.ServeMux, *grpc.ClientConn) error {
	return errors.New("boom")
}

func TestSharedConnection(t *testing.T) {
	addr := startBackend(t)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	tr, err := transcode.NewDynamic(addr, transcode.ProtoFiles("internal/testpb", "echo.proto"), transcode.WithClientConn(addr, cc))
	if err != nil {
		t.Fatal(err)
	}
	echoResponse(t, do(tr, "GET", "/v1/echo/a", ""))
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	// The caller's connection stays open.
	if _, err := testpb.NewEchoServiceClient(cc).Echo(context.Background(), &testpb.EchoRequest{Id: "still"}); err != nil {
		t.Fatalf("caller's connection closed: %v", err)
	}
}

// A target resolved through grpcresolver (the adapter a discovery-backed gateway uses): the
// Transcoder only sees WithDialOptions.
func TestResolvedTarget(t *testing.T) {
	addr := startBackend(t)
	b, err := grpcresolver.New("gk", func(_ context.Context, service string) ([]string, error) {
		if service != "echo" {
			return nil, errors.New("unknown service")
		}
		return []string{addr}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			var tr *transcode.Transcoder
			var err error
			opt := transcode.WithDialOptions(grpc.WithResolvers(b))
			if m.name == "static" {
				tr, err = transcode.New(insecureDial, opt, transcode.Register("gk:///echo", testpb.RegisterEchoServiceHandler))
			} else {
				tr, err = transcode.NewDynamic("gk:///echo", transcode.ProtoFiles("internal/testpb", "echo.proto"), insecureDial, opt)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			echoResponse(t, do(tr, "GET", "/v1/echo/r", ""))
		})
	}
}

func TestServicesOption(t *testing.T) {
	src := goodHeader + "service A { rpc Get(M) returns (M) { option (google.api.http) = {get: \"/a/{id}\"}; } }\n" +
		"service Admin { rpc Drop(M) returns (M) { option (google.api.http) = {delete: \"/admin/{id}\"}; } }\n"
	fsys := fstest.MapFS{"two.proto": {Data: []byte(src)}}
	all, err := transcode.NewDynamic("127.0.0.1:1", transcode.ProtoFS(fsys, "two.proto"), insecureDial)
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	only, err := transcode.NewDynamic("127.0.0.1:1", transcode.ProtoFS(fsys, "two.proto"), insecureDial, transcode.Services("p.A"))
	if err != nil {
		t.Fatal(err)
	}
	defer only.Close()
	// The unreachable backend answers 503 for a served route; an unserved route is 404.
	problemOf(t, do(all, "DELETE", "/admin/1", ""), 503)
	problemOf(t, do(only, "DELETE", "/admin/1", ""), 404)
	problemOf(t, do(only, "GET", "/a/1", ""), 503)
}

func TestAfterClose(t *testing.T) {
	forEachMode(t, func(t *testing.T, build func(...transcode.Option) http.Handler) {
		tr := build().(*transcode.Transcoder)
		echoResponse(t, do(tr, "GET", "/v1/echo/a", ""))
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		p := problemOf(t, do(tr, "GET", "/v1/echo/a", ""), 503)
		if p.GRPCStatus != "UNAVAILABLE" {
			t.Fatalf("%+v", p)
		}
	})
}
