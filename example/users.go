package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"

	usersv1 "github.com/gatewaykit/gatewaykit/example/proto/users/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// userService is the demo gRPC UserService (users.v1), reached by REST clients through package
// transcode.
type userService struct {
	usersv1.UnimplementedUserServiceServer

	mu    sync.Mutex
	users []*usersv1.User
	next  int
}

func newUserService() *userService {
	return &userService{next: 1, users: []*usersv1.User{
		{Id: "alice", DisplayName: "Alice Martin", Email: "alice@example.com", Roles: []string{"customer"}},
		{Id: "bob", DisplayName: "Bob Keller", Email: "bob@example.com", Roles: []string{"customer"}},
		{Id: "carol", DisplayName: "Carol Admin", Email: "carol@example.com", Roles: []string{"admin"}},
		{Id: "demo-free", DisplayName: "Free API client", Email: "free@example.com", Roles: []string{"customer"}},
		{Id: "demo-premium", DisplayName: "Premium API client", Email: "premium@example.com", Roles: []string{"customer"}},
	}}
}

// GetUser returns one user, or NotFound.
func (s *userService) GetUser(_ context.Context, req *usersv1.GetUserRequest) (*usersv1.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.GetId() == req.GetId() {
			return u, nil
		}
	}
	return nil, status.Error(codes.NotFound, "no such user")
}

// CreateUser adds a user.
func (s *userService) CreateUser(_ context.Context, req *usersv1.CreateUserRequest) (*usersv1.User, error) {
	if req.GetDisplayName() == "" {
		return nil, status.Error(codes.InvalidArgument, "display_name is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := &usersv1.User{Id: "u" + strconv.Itoa(s.next), DisplayName: req.GetDisplayName(), Email: req.GetEmail(), Roles: req.GetRoles()}
	s.next++
	s.users = append(s.users, u)
	return u, nil
}

// ListUsers streams the users, optionally only those with a role.
func (s *userService) ListUsers(req *usersv1.ListUsersRequest, stream grpc.ServerStreamingServer[usersv1.User]) error {
	s.mu.Lock()
	users := slices.Clone(s.users)
	s.mu.Unlock()
	sent := int32(0)
	for _, u := range users {
		if req.GetRole() != "" && !slices.Contains(u.GetRoles(), req.GetRole()) {
			continue
		}
		if req.GetLimit() > 0 && sent >= req.GetLimit() {
			break
		}
		if err := stream.Send(u); err != nil {
			return err
		}
		sent++
	}
	return nil
}

// grpcDemo is the users service on its own loopback port.
type grpcDemo struct {
	srv *grpc.Server
	ln  net.Listener
}

func startUsers() (*grpcDemo, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo users: %w", err)
	}
	srv := grpc.NewServer()
	usersv1.RegisterUserServiceServer(srv, newUserService())
	go func() { _ = srv.Serve(ln) }()
	return &grpcDemo{srv: srv, ln: ln}, nil
}

func (g *grpcDemo) addr() string { return g.ln.Addr().String() }

func (g *grpcDemo) close() { g.srv.GracefulStop() }
