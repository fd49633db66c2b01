package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Static is a Resolver over a fixed list of instances per service, for tests and small setups.
// With WithHealthCheck it probes every instance over HTTP and reports only those that answer.
// Static is safe for concurrent use; Close stops the health checks.
type Static struct {
	services map[string][]Instance
	check    *HealthCheck
	client   *http.Client
	own      *http.Transport
	logger   *slog.Logger

	mu      sync.Mutex
	healthy map[string][]Instance
	status  map[string]*probeState // by service + "\x00" + instance key

	hub    hub
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	checks metric.Int64Counter
}

type probeState struct {
	healthy     bool
	okRun, fail int
}

// HealthCheck configures active health checks of static instances: every Interval, a GET of Path
// on each instance; a 2xx or 3xx answer within Timeout is a success, anything else a failure. An
// instance starts healthy, leaves rotation after UnhealthyThreshold failures in a row and comes
// back after HealthyThreshold successes in a row.
type HealthCheck struct {
	// Path is the request path, for example "/healthz". Required, must start with "/".
	Path string
	// Interval between rounds of checks. Required, at least 10ms.
	Interval time.Duration
	// Timeout of one check. Zero means min(Interval, 2s).
	Timeout time.Duration
	// UnhealthyThreshold is the number of failures in a row that mark an instance down. Zero means 1.
	UnhealthyThreshold int
	// HealthyThreshold is the number of successes in a row that bring it back. Zero means 1.
	HealthyThreshold int
	// Client sends the checks. Nil means a client of the Static's own (closed by Close).
	Client *http.Client
}

func (hc *HealthCheck) validate() error {
	switch {
	case !strings.HasPrefix(hc.Path, "/"):
		return fmt.Errorf("discovery: HealthCheck.Path %q must start with /", hc.Path)
	case hc.Interval < 10*time.Millisecond:
		return fmt.Errorf("discovery: HealthCheck.Interval %v below 10ms", hc.Interval)
	case hc.Timeout < 0 || hc.UnhealthyThreshold < 0 || hc.HealthyThreshold < 0:
		return errors.New("discovery: HealthCheck: negative Timeout or threshold")
	}
	if hc.Timeout == 0 {
		hc.Timeout = min(hc.Interval, 2*time.Second)
	}
	hc.UnhealthyThreshold = max(hc.UnhealthyThreshold, 1)
	hc.HealthyThreshold = max(hc.HealthyThreshold, 1)
	return nil
}

// NewStatic returns a resolver over services (service name to instances). Instances need an
// Address and a Port in 1..65535; IDs default to "Address:Port" and must be unique per service.
// It accepts WithHealthCheck, WithLogger and WithMeterProvider. The map and slices are copied.
func NewStatic(services map[string][]Instance, opts ...Option) (*Static, error) {
	c := config{kind: kindStatic}
	if err := c.apply(opts); err != nil {
		return nil, err
	}
	c.defaults()
	s := &Static{services: map[string][]Instance{}, healthy: map[string][]Instance{}, status: map[string]*probeState{},
		check: c.check, logger: c.logger}
	for name, insts := range services {
		if name == "" {
			return nil, errors.New("discovery: NewStatic: empty service name")
		}
		seen := map[string]bool{}
		list := make([]Instance, 0, len(insts))
		for i, in := range insts {
			if err := in.validate(); err != nil {
				return nil, fmt.Errorf("discovery: NewStatic: service %q instance %d: %w", name, i, err)
			}
			if in.ID == "" {
				in.ID = in.HostPort()
			}
			if seen[in.ID] {
				return nil, fmt.Errorf("discovery: NewStatic: service %q: duplicate instance ID %q", name, in.ID)
			}
			seen[in.ID] = true
			in.Tags = slices.Clone(in.Tags)
			list = append(list, in)
			s.status[name+"\x00"+in.ID] = &probeState{healthy: true}
		}
		s.services[name] = list
		s.healthy[name] = list
	}
	if s.check != nil {
		meter := c.meter.Meter(meterName)
		var err error
		if s.checks, err = meter.Int64Counter("gatewaykit.discovery.health_checks", metric.WithUnit("{check}"),
			metric.WithDescription("Active health checks of static instances, by service and result (success, failure).")); err != nil {
			return nil, fmt.Errorf("discovery: metrics: %w", err)
		}
		s.client = s.check.Client
		if s.client == nil {
			s.own = DefaultTransport()
			s.client = &http.Client{Transport: s.own, CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // a 3xx is an answer, not somewhere else to check
			}}
		}
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel, s.done = cancel, make(chan struct{})
		go s.run(ctx)
	}
	return s, nil
}

// Instances returns the healthy instances of service, or ErrUnknownService.
func (s *Static) Instances(_ context.Context, service string) ([]Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	insts, ok := s.healthy[service]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownService, service)
	}
	return insts, nil
}

// Watch calls fn with the healthy instances of service at once, and again whenever a health check
// changes the set. It returns ErrUnknownService for a service it does not know. fn must not call
// stop.
func (s *Static) Watch(service string, fn func([]Instance)) (stop func(), err error) {
	if fn == nil {
		return nil, errors.New("discovery: Watch: callback is nil")
	}
	if _, ok := s.services[service]; !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownService, service)
	}
	return s.hub.add(service, fn, func() ([]Instance, bool) {
		insts, err := s.Instances(context.Background(), service)
		return insts, err == nil
	}), nil
}

// Close stops the health checks and waits for them. It is idempotent and returns nil.
func (s *Static) Close() error {
	s.once.Do(func() {
		if s.cancel != nil {
			s.cancel()
			<-s.done
		}
		if s.own != nil {
			s.own.CloseIdleConnections()
		}
	})
	return nil
}

func (s *Static) run(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(s.check.Interval)
	defer tick.Stop()
	for {
		s.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// round checks every instance once, concurrently, and publishes the services whose set changed.
func (s *Static) round(ctx context.Context) {
	type result struct {
		service string
		inst    Instance
		ok      bool
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var results []result
	for name, insts := range s.services {
		for _, in := range insts {
			wg.Go(func() {
				ok := s.probe(ctx, in)
				mu.Lock()
				results = append(results, result{name, in, ok})
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	changed := map[string]bool{}
	s.mu.Lock()
	for _, r := range results {
		st := s.status[r.service+"\x00"+r.inst.ID]
		res := "success"
		if r.ok {
			st.okRun, st.fail = st.okRun+1, 0
			if !st.healthy && st.okRun >= s.check.HealthyThreshold {
				st.healthy, changed[r.service] = true, true
				s.logger.Info("discovery: static instance healthy again", "service", r.service, "instance", r.inst.HostPort())
			}
		} else {
			res = "failure"
			st.okRun, st.fail = 0, st.fail+1
			if st.healthy && st.fail >= s.check.UnhealthyThreshold {
				st.healthy, changed[r.service] = false, true
				s.logger.Warn("discovery: static instance failed its health check", "service", r.service, "instance", r.inst.HostPort())
			}
		}
		s.checks.Add(ctx, 1, metric.WithAttributes(attribute.String("service", r.service), attribute.String("result", res)))
	}
	for name := range changed {
		var list []Instance
		for _, in := range s.services[name] {
			if s.status[name+"\x00"+in.ID].healthy {
				list = append(list, in)
			}
		}
		s.healthy[name] = list
	}
	s.mu.Unlock()
	for name := range changed {
		insts, _ := s.Instances(ctx, name)
		s.hub.publish(name, insts)
	}
}

func (s *Static) probe(ctx context.Context, in Instance) bool {
	ctx, cancel := context.WithTimeout(ctx, s.check.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.HostPort()+s.check.Path, nil)
	if err != nil {
		return false
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 4096)
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}
