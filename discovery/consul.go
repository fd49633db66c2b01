package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// minQueryInterval is the shortest time between the starts of two queries of one watch.
const minQueryInterval = 50 * time.Millisecond

// ErrClosed is returned by resolvers used after Close.
var ErrClosed = errors.New("discovery: resolver closed")

// Consul is a Resolver backed by Consul's health API: it reports the instances whose checks all
// pass (Health().ServiceMultipleTags with passingOnly), optionally filtered by tags (WithTags),
// in a datacenter (WithDatacenter) with an ACL token (WithToken).
//
// Each watched service has one goroutine running blocking queries with the last index (no
// polling: a query returns when the service's health changes or after WithWaitTime; queries
// start at least 50ms apart). When Consul
// fails or is unreachable the last good instance set keeps being served, the failure is counted
// (gatewaykit.discovery.resolver.errors), logged once when it starts and once when Consul answers
// again, the staleness gauge grows, and the query is retried with exponential back-off and jitter
// (WithBackoff). An empty answer from a reachable Consul is authoritative: no healthy instance.
//
// Consul is safe for concurrent use. Close stops the watch goroutines.
type Consul struct {
	client     *api.Client
	datacenter string
	token      string
	tags       []string
	waitTime   time.Duration
	backoffMin time.Duration
	backoffMax time.Duration
	logger     *slog.Logger
	clock      Clock

	mu      sync.Mutex
	watches map[string]*consulWatch
	closed  bool
	hub     hub

	errors metric.Int64Counter
	reg    metric.Registration
}

type consulWatch struct {
	service string
	refs    int
	cancel  context.CancelFunc
	done    chan struct{}
	errOpts []metric.AddOption
	attrs   metric.ObserveOption

	mu      sync.Mutex // guards the fields below
	insts   []Instance
	known   bool
	lastOK  time.Time
	failing bool
}

// NewConsul returns a Consul resolver using client (whose address, TLS and default token come
// from its api.Config). It accepts WithDatacenter, WithToken, WithTags, WithWaitTime (default
// 5m), WithBackoff (default 250ms..30s), WithClock, WithLogger and WithMeterProvider. It starts
// nothing until a service is watched.
func NewConsul(client *api.Client, opts ...Option) (*Consul, error) {
	if client == nil {
		return nil, errors.New("discovery: NewConsul: client is nil")
	}
	cfg := config{kind: kindConsul, waitTime: 5 * time.Minute, backoffMin: 250 * time.Millisecond, backoffMax: 30 * time.Second}
	if err := cfg.apply(opts); err != nil {
		return nil, err
	}
	cfg.defaults()
	c := &Consul{client: client, datacenter: cfg.datacenter, token: cfg.token, tags: cfg.tags, waitTime: cfg.waitTime,
		backoffMin: cfg.backoffMin, backoffMax: cfg.backoffMax, logger: cfg.logger, clock: cfg.clock,
		watches: map[string]*consulWatch{}}
	meter := cfg.meter.Meter(meterName)
	var err error
	if c.errors, err = meter.Int64Counter("gatewaykit.discovery.resolver.errors", metric.WithUnit("{error}"),
		metric.WithDescription("Failed Consul queries, by service.")); err != nil {
		return nil, fmt.Errorf("discovery: metrics: %w", err)
	}
	staleness, err := meter.Float64ObservableGauge("gatewaykit.discovery.resolver.staleness", metric.WithUnit("s"),
		metric.WithDescription("How long the served instance set has gone without a successful Consul refresh (0 while Consul answers), by service."))
	if err != nil {
		return nil, fmt.Errorf("discovery: metrics: %w", err)
	}
	count, err := meter.Int64ObservableGauge("gatewaykit.discovery.resolver.instances", metric.WithUnit("{instance}"),
		metric.WithDescription("Healthy instances reported by Consul, by service."))
	if err != nil {
		return nil, fmt.Errorf("discovery: metrics: %w", err)
	}
	c.reg, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		now := c.clock.Now()
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, w := range c.watches {
			w.mu.Lock()
			stale := 0.0
			if w.failing && !w.lastOK.IsZero() {
				stale = now.Sub(w.lastOK).Seconds()
			}
			n := len(w.insts)
			w.mu.Unlock()
			o.ObserveFloat64(staleness, stale, w.attrs)
			o.ObserveInt64(count, int64(n), w.attrs)
		}
		return nil
	}, staleness, count)
	if err != nil {
		return nil, fmt.Errorf("discovery: metrics: %w", err)
	}
	return c, nil
}

// Instances returns the healthy instances of service: the watched set when the service is
// watched and known (possibly stale, see the type's doc), otherwise the answer of one query.
func (c *Consul) Instances(ctx context.Context, service string) ([]Instance, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	w := c.watches[service]
	c.mu.Unlock()
	if w != nil {
		if insts, ok := w.current(); ok {
			return insts, nil
		}
	}
	insts, _, err := c.query(ctx, service, 0)
	return insts, err
}

// Watch calls fn with the healthy instances of service once the first query answers, then after
// every change, until stop is called. Watchers of one service share one blocking-query goroutine,
// which stops with the last watcher. fn must not call stop.
func (c *Consul) Watch(service string, fn func([]Instance)) (stop func(), err error) {
	if service == "" {
		return nil, errors.New("discovery: Watch: service name is empty")
	}
	if fn == nil {
		return nil, errors.New("discovery: Watch: callback is nil")
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	w := c.watches[service]
	if w == nil {
		ctx, cancel := context.WithCancel(context.Background())
		svc := attribute.String("service", service)
		w = &consulWatch{service: service, cancel: cancel, done: make(chan struct{}),
			errOpts: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(svc))},
			attrs:   metric.WithAttributeSet(attribute.NewSet(svc))}
		c.watches[service] = w
		go c.run(ctx, w)
	}
	w.refs++
	c.mu.Unlock()
	unsub := c.hub.add(service, fn, w.current)
	var once sync.Once
	return func() {
		once.Do(func() {
			unsub()
			c.mu.Lock()
			w.refs--
			last := w.refs == 0 && c.watches[service] == w
			if last {
				delete(c.watches, service)
			}
			c.mu.Unlock()
			if last {
				w.cancel()
				<-w.done
			}
		})
	}, nil
}

// Close stops every watch goroutine and waits for them. Later calls to Instances and Watch return
// ErrClosed. Close is idempotent and returns nil.
func (c *Consul) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	watches := c.watches
	c.watches = map[string]*consulWatch{}
	c.mu.Unlock()
	for _, w := range watches {
		w.cancel()
		<-w.done
	}
	_ = c.reg.Unregister()
	return nil
}

func (w *consulWatch) current() ([]Instance, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.insts, w.known
}

// query runs one health query; index 0 answers at once, otherwise it blocks until the index
// moves past it or the wait time ends.
func (c *Consul) query(ctx context.Context, service string, index uint64) ([]Instance, uint64, error) {
	q := &api.QueryOptions{Datacenter: c.datacenter, Token: c.token, WaitIndex: index}
	if index > 0 {
		q.WaitTime = c.waitTime
	}
	entries, meta, err := c.client.Health().ServiceMultipleTags(service, c.tags, true, q.WithContext(ctx))
	if err != nil {
		return nil, 0, fmt.Errorf("discovery: consul: health of %q: %w", service, err)
	}
	insts := make([]Instance, 0, len(entries))
	for _, e := range entries {
		if e == nil || e.Service == nil {
			continue
		}
		in := Instance{ID: e.Service.ID, Address: e.Service.Address, Port: e.Service.Port,
			Tags: e.Service.Tags, Meta: e.Service.Meta, Weight: e.Service.Weights.Passing}
		if in.Address == "" && e.Node != nil {
			in.Address = e.Node.Address
		}
		if in.validate() != nil {
			continue // an entry we could not dial
		}
		insts = append(insts, in)
	}
	slices.SortFunc(insts, func(a, b Instance) int { return cmp.Compare(a.ID, b.ID) })
	return insts, meta.LastIndex, nil
}

// run is the blocking-query loop of one watched service.
func (c *Consul) run(ctx context.Context, w *consulWatch) {
	defer close(w.done)
	var index uint64
	var started time.Time
	backoff := c.backoffMin
	for {
		// Rate limit, as Consul asks of blocking-query clients: a service whose health flaps
		// must not turn the loop into polling.
		if wait := minQueryInterval - time.Since(started); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		started = time.Now()
		insts, last, err := c.query(ctx, w.service, index)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			c.errors.Add(ctx, 1, w.errOpts...)
			w.mu.Lock()
			first := !w.failing
			w.failing = true
			n, known := len(w.insts), w.known
			w.mu.Unlock()
			if first {
				c.logger.Warn("discovery: consul query failed; serving the last good instance set while retrying",
					"service", w.service, "instances", n, "known", known, "error", err)
			} else {
				c.logger.Debug("discovery: consul query failed", "service", w.service, "error", err)
			}
			index = 0 // the agent may have restarted: start over with a fresh read
			wait := backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, c.backoffMax)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		backoff = c.backoffMin
		switch {
		case last < index: // the index went backwards (agent restarted, snapshot restored)
			index = 0
		case last == 0:
			index = 1
		default:
			index = last
		}
		w.mu.Lock()
		recovered := w.failing
		changed := !w.known || !equalInstances(w.insts, insts)
		if changed {
			w.insts = insts
		}
		w.known, w.failing, w.lastOK = true, false, c.clock.Now()
		w.mu.Unlock()
		if recovered {
			c.logger.Info("discovery: consul answers again", "service", w.service, "instances", len(insts))
		}
		if changed {
			c.hub.publish(w.service, insts)
		}
	}
}
