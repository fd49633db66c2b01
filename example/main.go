package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Config is everything run needs; main fills it from flags, tests build it directly.
type Config struct {
	// Addr is the gateway's listen address (default 127.0.0.1:8080; port 0 picks a free one).
	Addr string
	// Redis, when set (redis://host:port/db), holds rate-limit counters, API keys and cached
	// responses, shared by every gateway process using it.
	Redis string
	// Consul, when set (host:port), registers the demo services in Consul with health checks and
	// resolves every service through Consul.
	Consul string
	// Upstreams replaces demo services: service name to instance URLs (http://host:port; for
	// users, the gRPC server's host:port in the same form).
	Upstreams map[string][]string
	// Issuer and JWKSURL select an external identity provider (OIDC discovery from Issuer, or the
	// JWK Set at JWKSURL, with Issuer then checked against "iss" when set). Both empty: the demo
	// identity provider, and the /demo endpoints, are enabled.
	Issuer  string
	JWKSURL string
	// Audience is the "aud" tokens must carry (default "gatewaykit-example"; "-" for none with an
	// external identity provider).
	Audience string
	// Limits are the rate limits (DefaultLimits when zero).
	Limits Limits
	// ShutdownTimeout bounds the graceful shutdown (default 10s).
	ShutdownTimeout time.Duration
	// LogLevel is the minimum level logged to out (default Info: one access-log line per request).
	LogLevel slog.Level
}

func (c Config) demoIdP() bool { return c.Issuer == "" && c.JWKSURL == "" }

// serviceNames are the services an -upstream may replace.
var serviceNames = []string{"users", "orders", "products", "payments", "recommendations"}

// upstreamFlag is the repeatable -upstream name=http://host:port flag.
type upstreamFlag map[string][]string

func (u upstreamFlag) String() string {
	var parts []string
	for name, urls := range u {
		for _, v := range urls {
			parts = append(parts, name+"="+v)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (u upstreamFlag) Set(v string) error {
	name, raw, ok := strings.Cut(v, "=")
	if !ok || name == "" || raw == "" {
		return errors.New("want name=http://host:port")
	}
	if !slices.Contains(serviceNames, name) {
		return fmt.Errorf("unknown service %q (one of %s)", name, strings.Join(serviceNames, ", "))
	}
	if _, err := parseUpstream(raw); err != nil {
		return err
	}
	u[name] = append(u[name], raw)
	return nil
}

// parseUpstream returns the host and port of an upstream URL.
func parseUpstream(raw string) (*url.URL, error) {
	p, err := url.Parse(raw)
	if err != nil || (p.Scheme != "http" && p.Scheme != "grpc") || p.Hostname() == "" || p.Port() == "" {
		return nil, fmt.Errorf("upstream %q: want http://host:port", raw)
	}
	return p, nil
}

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	cfg := Config{Upstreams: upstreamFlag{}, Limits: DefaultLimits()}
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "listen address of the gateway")
	fs.StringVar(&cfg.Redis, "redis", "", "Redis URL (redis://127.0.0.1:6379/0) for rate limits, API keys and the response cache")
	fs.StringVar(&cfg.Consul, "consul", "", "Consul agent address (127.0.0.1:8500): register the demo services and resolve through Consul")
	fs.Var(upstreamFlag(cfg.Upstreams), "upstream", "name=http://host:port: use an external instance for a service instead of the demo one (repeatable)")
	fs.StringVar(&cfg.Issuer, "issuer", "", "external OpenID Connect issuer URL (disables the demo identity provider)")
	fs.StringVar(&cfg.JWKSURL, "jwks-url", "", "external JWK Set URL (disables the demo identity provider)")
	fs.StringVar(&cfg.Audience, "audience", "", `required token audience (default "gatewaykit-example"; "-" for none)`)
	debug := fs.Bool("debug", false, "log at debug level")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *debug {
		cfg.LogLevel = slog.LevelDebug
	}
	return cfg, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}
