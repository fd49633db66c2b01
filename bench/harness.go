package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// target is one thing under load: a URL and the headers each request carries.
type target struct {
	name    string
	desc    string
	url     string
	headers map[string]string
}

// harness owns the child processes and the temp dir of one run.
type harness struct {
	o     options
	dir   string
	self  string
	procs []*exec.Cmd
	log   func(format string, args ...any)
}

func runHarness(ctx context.Context, o options) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "gatewaykit-bench-")
	if err != nil {
		return err
	}
	h := &harness{o: o, dir: dir, self: self, log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }}
	defer os.RemoveAll(dir)
	defer h.stopAll()

	b1, err := h.startRole(ctx, "backend", "")
	if err != nil {
		return err
	}
	b2, err := h.startRole(ctx, "backend", "")
	if err != nil {
		return err
	}
	backends := b1 + "," + b2

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if err := writePublicKey(filepath.Join(dir, "jwt-pub.pem"), &key.PublicKey); err != nil {
		return err
	}
	_ = os.Setenv("BENCH_JWT_PUBKEY", filepath.Join(dir, "jwt-pub.pem")) // read by the "full" role
	token, err := mintES256(key, "bench-user")
	if err != nil {
		return err
	}

	targets := []target{{name: "direct", desc: "wrk straight to one backend", url: "http://" + b1 + "/orders/1"}}
	add := func(name, desc, role, ups string, headers map[string]string) error {
		addr, err := h.startRole(ctx, role, ups)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		targets = append(targets, target{name: name, desc: desc, url: "http://" + addr + "/orders/1", headers: headers})
		return nil
	}
	if err := add("bare", "httputil.ReverseProxy, default settings, one backend", "bare", b1, nil); err != nil {
		return err
	}
	// The tuning steps between a default ReverseProxy and ours, each measured on its own.
	if err := add("bare-transport", "step 1: ReverseProxy + a transport keeping 256 idle connections per host", "bare-transport", b1, nil); err != nil {
		return err
	}
	if err := add("bare-tuned", "step 2: step 1 + pooled copy buffers", "bare-tuned", b1, nil); err != nil {
		return err
	}
	for _, r := range gatewaykitTargets() {
		var hdr map[string]string
		if r.needsToken {
			hdr = map[string]string{"Authorization": "Bearer " + token}
		}
		if err := add(r.name, r.desc, r.name, backends, hdr); err != nil {
			return err
		}
	}
	if addr, err := h.startNginx(ctx, b1, b2); err != nil {
		h.log("bench: nginx skipped: %v", err)
	} else {
		targets = append(targets, target{name: "nginx", desc: "nginx, keepalive upstream over two backends", url: "http://" + addr + "/orders/1"})
	}
	if addr, err := h.startCaddy(ctx, b1, b2); err != nil {
		h.log("bench: caddy skipped: %v", err)
	} else {
		targets = append(targets, target{name: "caddy", desc: "Caddy reverse_proxy over two backends", url: "http://" + addr + "/orders/1"})
	}
	if o.only != "" {
		keep := strings.Split(o.only, ",")
		targets = slices.DeleteFunc(targets, func(t target) bool { return !slices.Contains(keep, t.name) && t.name != "bare" })
	}

	for _, t := range targets { // every target must answer 200 before we measure it
		if err := checkTarget(t); err != nil {
			return fmt.Errorf("%s is not healthy: %w", t.name, err)
		}
	}
	res := &results{Machine: machineLine(), Started: time.Now().UTC(), Rounds: o.rounds, Conns: o.conns,
		Duration: o.duration, OpenDuration: o.openDur, Rates: o.rates, Targets: targets}
	for _, t := range targets {
		res.TargetNames = append(res.TargetNames, t.name)
	}
	res.Tool = "vegeta"
	if _, err := exec.LookPath("wrk"); err == nil {
		res.Tool = "wrk"
	}
	h.log("bench: %d targets, %d rounds, closed loop with %s -c%d for %s each", len(targets), o.rounds, res.Tool, o.conns, o.duration)
	for _, t := range targets { // warm-up: connections, JIT-free but caches and pools
		if _, err := closedLoop(ctx, res.Tool, t, o.conns, time.Second); err != nil {
			return fmt.Errorf("warm-up %s: %w", t.name, err)
		}
	}
	for round := 0; round < o.rounds; round++ {
		for _, t := range targets {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rps, err := closedLoop(ctx, res.Tool, t, o.conns, o.duration)
			if err != nil {
				return fmt.Errorf("closed loop %s: %w", t.name, err)
			}
			h.log("  round %d %-8s %9.0f req/s", round+1, t.name, rps)
			res.addClosed(t.name, rps)
		}
	}
	openRounds := min(o.rounds, 3)
	for _, rate := range o.rates {
		for round := 0; round < openRounds; round++ {
			for _, t := range targets {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				lat, err := openLoop(ctx, t, rate, o.openDur)
				if err != nil {
					return fmt.Errorf("open loop %s at %d/s: %w", t.name, rate, err)
				}
				h.log("  %5d/s round %d %-8s p50 %v p99 %v max %v errors %d", rate, round+1, t.name, lat.P50, lat.P99, lat.Max, lat.Errors)
				res.addOpen(t.name, rate, lat)
			}
		}
	}
	res.Finished = time.Now().UTC()
	out, err := res.write(o.out)
	if err != nil {
		return err
	}
	fmt.Println(res.markdown())
	h.log("bench: results in %s", out)
	return nil
}

// startRole starts this binary as a target process on a free loopback port and waits until it
// accepts connections.
func (h *harness) startRole(ctx context.Context, role, upstreams string) (string, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, h.self, "-role", role, "-addr", addr, "-upstreams", upstreams)
	logf, err := os.OpenFile(filepath.Join(h.dir, role+"-"+addr+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	h.procs = append(h.procs, cmd)
	return addr, waitListening(addr, 10*time.Second)
}

func (h *harness) startNginx(ctx context.Context, b1, b2 string) (string, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return "", errors.New("not installed (Debian: apt-get install nginx-light)")
	}
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	d := filepath.Join(h.dir, "nginx")
	if err := os.MkdirAll(filepath.Join(d, "tmp"), 0o755); err != nil {
		return "", err
	}
	conf := fmt.Sprintf(`daemon off;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp/body; proxy_temp_path %[1]s/tmp/proxy;
  fastcgi_temp_path %[1]s/tmp/fcgi; uwsgi_temp_path %[1]s/tmp/uwsgi; scgi_temp_path %[1]s/tmp/scgi;
  upstream be { server %[2]s; server %[3]s; keepalive 128; }
  server {
    listen %[4]s;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`, d, b1, b2, addr)
	path := filepath.Join(d, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, bin, "-p", d, "-c", path)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	h.procs = append(h.procs, cmd)
	return addr, waitListening(addr, 10*time.Second)
}

func (h *harness) startCaddy(ctx context.Context, b1, b2 string) (string, error) {
	bin, err := exec.LookPath("caddy")
	if err != nil {
		return "", errors.New("not installed (Debian: apt-get install caddy)")
	}
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	d := filepath.Join(h.dir, "caddy")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	conf := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n}\nhttp://%s {\n\treverse_proxy %s %s\n}\n", addr, b1, b2)
	path := filepath.Join(d, "Caddyfile")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+d, "XDG_CONFIG_HOME="+d, "HOME="+d)
	logf, err := os.Create(filepath.Join(d, "caddy.log"))
	if err != nil {
		return "", err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	h.procs = append(h.procs, cmd)
	return addr, waitListening(addr, 15*time.Second)
}

// stopAll ends every child process (and nginx's workers, through the process group).
func (h *harness) stopAll() {
	for _, c := range h.procs {
		if c.Process == nil {
			continue
		}
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range h.procs {
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			_ = c.Process.Kill()
			<-done
		}
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after %s: %w", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func checkTarget(t target) error {
	req, err := http.NewRequest("GET", t.url, nil)
	if err != nil {
		return err
	}
	for k, v := range t.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func writePublicKey(path string, pub *ecdsa.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
}

func machineLine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if _, v, ok := strings.Cut(line, ":"); ok {
					model = strings.TrimSpace(v)
				}
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s %s/%s", model, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
