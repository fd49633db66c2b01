package grpcresolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/resolver"
)

// LookupFunc returns the "host:port" addresses of a service's healthy instances. It must be safe
// for concurrent use and honour ctx.
type LookupFunc func(ctx context.Context, service string) ([]string, error)

// Defaults.
const (
	DefaultRefreshInterval = 10 * time.Second
	DefaultLookupTimeout   = 5 * time.Second
)

// Option configures New.
type Option func(*Builder) error

// RefreshInterval sets how often the lookup runs (default 10s, at least 10ms).
func RefreshInterval(d time.Duration) Option {
	return func(b *Builder) error {
		if d < 10*time.Millisecond {
			return fmt.Errorf("grpcresolver: refresh interval %v is below 10ms", d)
		}
		b.interval = d
		return nil
	}
}

// LookupTimeout bounds each lookup (default 5s). Must be positive.
func LookupTimeout(d time.Duration) Option {
	return func(b *Builder) error {
		if d <= 0 {
			return fmt.Errorf("grpcresolver: lookup timeout %v must be positive", d)
		}
		b.timeout = d
		return nil
	}
}

// WithLogger sets the logger for lookup failures (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(b *Builder) error {
		if l == nil {
			return errors.New("grpcresolver: nil logger")
		}
		b.logger = l
		return nil
	}
}

// Builder is a gRPC resolver.Builder for one URI scheme. Register it per connection with
// grpc.WithResolvers (not globally). It is immutable and safe for concurrent use.
type Builder struct {
	scheme   string
	lookup   LookupFunc
	interval time.Duration
	timeout  time.Duration
	logger   *slog.Logger
}

// New returns a Builder for targets "scheme:///service" that resolves with lookup.
func New(scheme string, lookup LookupFunc, opts ...Option) (*Builder, error) {
	if scheme == "" || !validScheme(scheme) {
		return nil, fmt.Errorf("grpcresolver: scheme %q is not a valid URI scheme", scheme)
	}
	if lookup == nil {
		return nil, errors.New("grpcresolver: nil lookup")
	}
	b := &Builder{scheme: scheme, lookup: lookup, interval: DefaultRefreshInterval, timeout: DefaultLookupTimeout}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("grpcresolver: nil option")
		}
		if err := o(b); err != nil {
			return nil, err
		}
	}
	if b.logger == nil {
		b.logger = slog.Default()
	}
	return b, nil
}

func validScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !alpha && (i == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

// Scheme implements resolver.Builder.
func (b *Builder) Scheme() string { return b.scheme }

// Build implements resolver.Builder: it starts the resolver's goroutine.
func (b *Builder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	service := target.Endpoint()
	if service == "" {
		return nil, fmt.Errorf("grpcresolver: target %q names no service", target.URL.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &watcher{b: b, service: service, cc: cc, cancel: cancel, now: make(chan struct{}, 1), done: make(chan struct{})}
	go r.run(ctx)
	return r, nil
}

type watcher struct {
	b       *Builder
	service string
	cc      resolver.ClientConn
	cancel  context.CancelFunc
	now     chan struct{}
	done    chan struct{}
	once    sync.Once
}

// ResolveNow implements resolver.Resolver: it asks for a lookup soon (requests coalesce).
func (r *watcher) ResolveNow(resolver.ResolveNowOptions) {
	select {
	case r.now <- struct{}{}:
	default:
	}
}

// Close implements resolver.Resolver: it stops the goroutine and waits for it.
func (r *watcher) Close() {
	r.once.Do(func() {
		r.cancel()
		<-r.done
	})
}

func (r *watcher) run(ctx context.Context) {
	defer close(r.done)
	var last []string
	var lastLog time.Time
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-r.now:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		addrs, err := r.resolve(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if last == nil {
				r.cc.ReportError(err)
			}
			if time.Since(lastLog) >= r.b.interval {
				lastLog = time.Now()
				r.b.logger.Warn("grpcresolver: lookup failed; keeping the last good addresses",
					"service", r.service, "error", err, "addresses", len(last))
			}
		case !slices.Equal(addrs, last):
			state := resolver.State{Addresses: make([]resolver.Address, len(addrs))}
			for i, a := range addrs {
				state.Addresses[i] = resolver.Address{Addr: a}
			}
			if err := r.cc.UpdateState(state); err == nil {
				last = addrs
			}
		}
		timer.Reset(r.b.interval)
	}
}

func (r *watcher) resolve(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.b.timeout)
	defer cancel()
	addrs, err := r.b.lookup(ctx, r.service)
	if err != nil {
		return nil, fmt.Errorf("grpcresolver: lookup %q: %w", r.service, err)
	}
	addrs = slices.DeleteFunc(slices.Clone(addrs), func(a string) bool { return a == "" })
	if len(addrs) == 0 {
		return nil, fmt.Errorf("grpcresolver: lookup %q: no instances", r.service)
	}
	slices.Sort(addrs)
	return slices.Compact(addrs), nil
}
