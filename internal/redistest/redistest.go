package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewaykit/gatewaykit/internal/testservice"
)

// Server is a running private redis-server. Its methods are safe for concurrent use.
type Server struct {
	// Addr is "127.0.0.1:port". It stays the same across Restart.
	Addr string

	t    testing.TB
	bin  string
	dir  string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a redis-server for t and stops it in t.Cleanup. Extra arguments are passed to
// redis-server (for example "--maxmemory", "1mb"). It fails the test if the server does not answer
// PING within 10 seconds.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := testservice.LookBinary("GATEWAYKIT_REDIS_SERVER", "redis-server")
	if bin == "" {
		testservice.Missing(t, "redistest: redis-server not found: install it (apt-get install redis-server) or set GATEWAYKIT_REDIS_SERVER")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	var lastErr error
	for range 5 {
		ports, err := testservice.FreePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		s.port = ports[0]
		s.Addr = "127.0.0.1:" + strconv.Itoa(s.port)
		if lastErr = s.start(args); lastErr == nil {
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

func (s *Server) start(args []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logPath := filepath.Join(s.dir, "redis.log")
	base := []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", logPath, "--daemonize", "no", "--protected-mode", "no"}
	cmd := exec.Command(s.bin, append(base, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server exited at start: %s", testservice.Tail(logPath, 2000))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			s.cmd, s.done = cmd, done
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on %s did not answer PING: %v: %s", s.Addr, err, testservice.Tail(logPath, 2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Client returns a new go-redis client for the server, closed in t.Cleanup.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop shuts the server down gracefully (SIGTERM) and waits for it to exit. No-op when stopped.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill kills the server (SIGKILL), as a crash would, and waits for it to exit. No-op when stopped.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

// Restart starts a stopped or killed server again on the same address, with an empty data set.
// It fails the test if the server cannot start.
func (s *Server) Restart(args ...string) {
	s.t.Helper()
	if err := s.start(args); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// Running reports whether the server process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}
