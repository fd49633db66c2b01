package consultest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/internal/testservice"
)

// Agent is a running private Consul dev agent. Its methods are safe for concurrent use.
type Agent struct {
	// Addr is the HTTP API address, "127.0.0.1:port". It stays the same across Restart.
	Addr string

	t     testing.TB
	bin   string
	dir   string
	ports []int // http, serf_lan, serf_wan, server

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

var (
	binOnce sync.Once
	binPath string
)

// Binary returns the Consul binary to use, or "" when none can be found.
func Binary() string {
	binOnce.Do(func() {
		binPath = testservice.LookBinary("GATEWAYKIT_CONSUL", "consul")
		if binPath != "" {
			return
		}
		root := testservice.ModuleRoot()
		if root == "" {
			return
		}
		script := filepath.Join(root, "..", "shared", "tools", "consul.sh")
		if _, err := os.Stat(script); err != nil {
			return
		}
		out, err := exec.Command("bash", script).Output()
		if err != nil {
			return
		}
		if p := strings.TrimSpace(string(out)); p != "" {
			binPath = p
		}
	})
	return binPath
}

// Start starts a Consul dev agent for t and stops it in t.Cleanup. It fails the test if the agent
// has no leader within 30 seconds.
func Start(t testing.TB) *Agent {
	t.Helper()
	bin := Binary()
	if bin == "" {
		testservice.Missing(t, "consultest: no Consul agent: set GATEWAYKIT_CONSUL, put consul on PATH, or run ../shared/tools/consul.sh")
	}
	a := &Agent{t: t, bin: bin, dir: t.TempDir()}
	var lastErr error
	for range 5 {
		ports, err := testservice.FreePorts(4)
		if err != nil {
			t.Fatal(err)
		}
		a.ports = ports
		a.Addr = "127.0.0.1:" + strconv.Itoa(ports[0])
		if lastErr = a.start(); lastErr == nil {
			t.Cleanup(a.Kill)
			return a
		}
	}
	t.Fatalf("consultest: %v", lastErr)
	return nil
}

func (a *Agent) start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil {
		return nil
	}
	logPath := filepath.Join(a.dir, "consul.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(a.bin, "agent", "-dev", "-log-level=warn",
		"-bind=127.0.0.1", "-client=127.0.0.1", "-advertise=127.0.0.1",
		"-http-port="+strconv.Itoa(a.ports[0]),
		"-serf-lan-port="+strconv.Itoa(a.ports[1]),
		"-serf-wan-port="+strconv.Itoa(a.ports[2]),
		"-server-port="+strconv.Itoa(a.ports[3]),
		"-dns-port=-1", "-grpc-port=-1", "-grpc-tls-port=-1",
		"-node=consultest", "-disable-host-node-id")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", a.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	client := &http.Client{Timeout: 500 * time.Millisecond}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("consul exited at start: %s", testservice.Tail(logPath, 2000))
		default:
		}
		if leader(client, a.Addr) {
			a.cmd, a.done = cmd, done
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("consul on %s has no leader after 30s: %s", a.Addr, testservice.Tail(logPath, 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func leader(c *http.Client, addr string) bool {
	req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://"+addr+"/v1/status/leader", nil)
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	s := strings.Trim(strings.TrimSpace(buf.String()), `"`)
	return resp.StatusCode == 200 && s != ""
}

// Stop shuts the agent down gracefully (SIGINT, as Ctrl-C) and waits for it. No-op when stopped.
func (a *Agent) Stop() { a.signal(syscall.SIGINT) }

// Kill kills the agent (SIGKILL) and waits for it. No-op when stopped.
func (a *Agent) Kill() { a.signal(syscall.SIGKILL) }

func (a *Agent) signal(sig syscall.Signal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(sig)
	select {
	case <-a.done:
	case <-time.After(15 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
	a.cmd, a.done = nil, nil
}

// Restart starts a stopped agent again on the same ports. A dev agent keeps nothing: the catalog
// starts empty. It fails the test if the agent does not come up.
func (a *Agent) Restart() {
	a.t.Helper()
	if err := a.start(); err != nil {
		a.t.Fatalf("consultest: restart: %v", err)
	}
}

// Running reports whether the agent process is up.
func (a *Agent) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cmd != nil
}
