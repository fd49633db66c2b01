package transcode_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	usersv1 "github.com/gatewaykit/gatewaykit/example/proto/users/v1"
	"github.com/gatewaykit/gatewaykit/transcode"
)

// usersServer is a small implementation of the example's UserService.
type usersServer struct {
	usersv1.UnimplementedUserServiceServer
}

var exampleUsers = []*usersv1.User{
	{Id: "1", DisplayName: "Ada", Email: "ada@example.com", Roles: []string{"admin"}},
	{Id: "2", DisplayName: "Bob", Email: "bob@example.com", Roles: []string{"customer"}},
	{Id: "3", DisplayName: "Cy", Email: "cy@example.com", Roles: []string{"customer"}},
}

func (usersServer) GetUser(_ context.Context, req *usersv1.GetUserRequest) (*usersv1.User, error) {
	for _, u := range exampleUsers {
		if u.Id == req.Id {
			return u, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "no user %q", req.Id)
}

func (usersServer) CreateUser(_ context.Context, req *usersv1.CreateUserRequest) (*usersv1.User, error) {
	if req.Email == "" {
		return nil, status.Error(codes.InvalidArgument, "email is required")
	}
	return &usersv1.User{Id: "4", DisplayName: req.DisplayName, Email: req.Email, Roles: req.Roles}, nil
}

func (usersServer) ListUsers(req *usersv1.ListUsersRequest, ss grpc.ServerStreamingServer[usersv1.User]) error {
	n := int32(0)
	for _, u := range exampleUsers {
		if req.Role != "" && !slices.Contains(u.Roles, req.Role) {
			continue
		}
		if req.Limit > 0 && n == req.Limit {
			break
		}
		if err := ss.Send(u); err != nil {
			return err
		}
		n++
	}
	return nil
}

// TestExampleUsersProto serves the example's users.proto in both modes: the committed generated
// code (static) and the .proto source itself (dynamic) answer the same way.
func TestExampleUsersProto(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	usersv1.RegisterUserServiceServer(srv, usersServer{})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	defer func() { srv.Stop(); <-done }()
	addr := lis.Addr().String()

	static, err := transcode.New(insecureDial, transcode.Register(addr, usersv1.RegisterUserServiceHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer static.Close()
	dynamic, err := transcode.NewDynamic(addr, transcode.ProtoFiles("../example/proto", "users/v1/users.proto"), insecureDial)
	if err != nil {
		t.Fatal(err)
	}
	defer dynamic.Close()

	for name, h := range map[string]http.Handler{"static": static, "dynamic": dynamic} {
		t.Run(name, func(t *testing.T) {
			var u usersv1.User
			w := do(h, "GET", "/v1/users/2", "")
			if err := protojson.Unmarshal(w.Body.Bytes(), &u); err != nil || u.GetDisplayName() != "Bob" {
				t.Fatalf("GetUser: %d %s", w.Code, w.Body)
			}
			if w.Body.String() == "" || !strings.Contains(w.Body.String(), "displayName") {
				t.Fatalf("not lowerCamelCase: %s", w.Body)
			}
			problemOf(t, do(h, "GET", "/v1/users/9", ""), 404)

			w = do(h, "POST", "/v1/users", `{"displayName":"Di","email":"di@example.com","roles":["customer"]}`)
			if err := protojson.Unmarshal(w.Body.Bytes(), &u); err != nil || u.GetId() != "4" || u.GetEmail() != "di@example.com" {
				t.Fatalf("CreateUser: %d %s", w.Code, w.Body)
			}
			problemOf(t, do(h, "POST", "/v1/users", `{"displayName":"Di"}`), 400)

			srv := httptest.NewServer(h)
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL + "/v1/users?role=customer&limit=5")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var names []string
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				var line struct{ Result json.RawMessage }
				var u usersv1.User
				if err := json.Unmarshal(sc.Bytes(), &line); err != nil || protojson.Unmarshal(line.Result, &u) != nil {
					t.Fatalf("line %q", sc.Text())
				}
				names = append(names, u.GetDisplayName())
			}
			if strings.Join(names, ",") != "Bob,Cy" {
				t.Fatalf("ListUsers streamed %v", names)
			}
		})
	}
}
