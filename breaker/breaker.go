package breaker

import (
	"log/slog"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/internal/retrybudget"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel"
)

// State is the state of one upstream's breaker. The values are ordered by severity and are the
// values of the gatewaykit.breaker.state gauge.
type State int

// Breaker states.
const (
	// Closed admits every request.
	Closed State = iota
	// Recovering is closed after a successful half-open probe, admitting a growing share of
	// requests (see RecoveryRamp).
	Recovering
	// HalfOpen admits a few probe requests (see HalfOpenProbes) and rejects the others.
	HalfOpen
	// Open rejects every request until the open timeout passes.
	Open
)

// String returns "closed", "recovering", "half_open" or "open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Recovering:
		return "recovering"
	case HalfOpen:
		return "half_open"
	case Open:
		return "open"
	default:
		return "unknown"
	}
}

// Breaker is a set of circuit breakers, one per upstream key, created lazily on first use and
// bounded in number (see MaxUpstreams). It serves two forms over the same set: Wrap (a middleware)
// and Transport (an http.RoundTripper). A Breaker is safe for concurrent use. It owns no
// goroutines; Close unregisters its metrics callback.
type Breaker struct {
	cfg       config
	rampPPM   []uint64 // ramp shares in parts per million
	tel       *telemetry
	mu        sync.Mutex // serializes inserts and evictions
	entries   atomic.Pointer[map[string]*entry]
	gen       atomic.Uint64 // incremented on every insert; approximates recency for eviction
	lastSweep atomic.Int64  // clock UnixNano of the last idle sweep
	closeOnce sync.Once
}

// New returns a Breaker configured by opts; see the options for the defaults. It validates every
// option and returns a descriptive error for the first invalid one.
func New(opts ...Option) (*Breaker, error) {
	c := config{
		name:          DefaultName,
		window:        DefaultWindow,
		openTimeout:   DefaultOpenTimeout,
		probes:        DefaultHalfOpenProbes,
		rampStep:      DefaultRampStep,
		rampShares:    defaultRampShares(),
		maxUpstreams:  DefaultMaxUpstreams,
		idleTimeout:   DefaultIdleTimeout,
		failure:       DefaultFailure,
		retryBase:     DefaultRetryBase,
		retryMax:      DefaultRetryMaxDelay,
		retryRatio:    DefaultRetryRatio,
		retryFloor:    DefaultRetryFloor,
		maxReplayBody: DefaultMaxReplayBody,
		clock:         realClock{},
	}
	c.retryOn[http.StatusBadGateway] = true
	c.retryOn[http.StatusServiceUnavailable] = true
	c.retryOn[http.StatusGatewayTimeout] = true
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	if c.consecutive == 0 && c.ratio == 0 {
		c.consecutive = DefaultFailures
	}
	if c.meter == nil {
		c.meter = otel.GetMeterProvider()
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	c.errorHandler = c.errorHandler.Or()
	b := &Breaker{cfg: c}
	for _, s := range c.rampShares {
		b.rampPPM = append(b.rampPPM, uint64(math.Round(s*1e6)))
	}
	empty := map[string]*entry{}
	b.entries.Store(&empty)
	b.lastSweep.Store(c.clock.Now().UnixNano())
	tel, err := newTelemetry(b)
	if err != nil {
		return nil, err
	}
	b.tel = tel
	return b, nil
}

// Close unregisters the state gauge callback from the meter provider. The breaker keeps working
// (without the gauge). Close is idempotent and safe for concurrent use.
func (b *Breaker) Close() error {
	var err error
	b.closeOnce.Do(func() { err = b.tel.close() })
	return err
}

// State returns the current state of the breaker for key. A key without a breaker (never used, or
// evicted) is Closed.
func (b *Breaker) State(key string) State {
	e := (*b.entries.Load())[key]
	if e == nil {
		return Closed
	}
	e.cb.State() // lets gobreaker move open -> half-open when the timeout passed
	if s := State(e.state.Load()); s == Recovering {
		e.rampStage(b, b.cfg.clock.Now().UnixNano()) // ends a finished ramp
	}
	return State(e.state.Load())
}

// Len returns the number of breakers currently kept (at most MaxUpstreams).
func (b *Breaker) Len() int { return len(*b.entries.Load()) }

// entry returns the breaker of key, creating it (and evicting an idle one at the bound) if needed.
func (b *Breaker) entry(key string) *entry {
	if key == "" {
		key = b.cfg.name
	}
	if e := (*b.entries.Load())[key]; e != nil {
		if g := b.gen.Load(); e.lastGen.Load() != g {
			e.lastGen.Store(g)
		}
		if !e.used.Load() {
			e.used.Store(true)
		}
		return e
	}
	return b.insert(key)
}

func (b *Breaker) insert(key string) *entry {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sweepLocked(b.cfg.clock.Now().UnixNano())
	old := *b.entries.Load()
	if e := old[key]; e != nil {
		return e
	}
	victim := ""
	if len(old) >= b.cfg.maxUpstreams {
		victim = b.victim(old)
	}
	m := make(map[string]*entry, len(old)+1)
	for k, e := range old {
		if k != victim {
			m[k] = e
		}
	}
	g := b.gen.Add(1)
	e := newEntry(b, key, g)
	m[key] = e
	b.entries.Store(&m)
	return e
}

// sweep drops idle breakers (see IdleTimeout) when a sweep is due. It runs on inserts and on
// metric collection, so the package needs no goroutine of its own.
func (b *Breaker) sweep(now int64) {
	if b.cfg.idleTimeout <= 0 || now-b.lastSweep.Load() < int64(b.cfg.idleTimeout) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sweepLocked(now)
}

// sweepLocked removes the entries unused since the previous sweep (at least IdleTimeout ago),
// except an open breaker still within its open timeout: forgetting it would let requests through.
func (b *Breaker) sweepLocked(now int64) {
	if b.cfg.idleTimeout <= 0 || now-b.lastSweep.Load() < int64(b.cfg.idleTimeout) {
		return
	}
	b.lastSweep.Store(now)
	old := *b.entries.Load()
	var idle []string
	for k, e := range old {
		if e.used.Load() {
			e.used.Store(false)
			continue
		}
		if State(e.state.Load()) == Open && now < e.openedAt.Load()+int64(b.cfg.openTimeout) {
			continue
		}
		idle = append(idle, k)
	}
	if len(idle) == 0 {
		return
	}
	m := make(map[string]*entry, len(old))
	for k, e := range old {
		m[k] = e
	}
	for _, k := range idle {
		delete(m, k)
	}
	b.entries.Store(&m)
}

// victim picks the entry idle the longest, preferring closed breakers so that an evicted key
// cannot turn a failing upstream's open breaker into a fresh closed one.
func (b *Breaker) victim(m map[string]*entry) string {
	best, bestClosed := "", ""
	var bestGen, bestClosedGen uint64 = math.MaxUint64, math.MaxUint64
	for k, e := range m {
		g := e.lastGen.Load()
		if g < bestGen || (g == bestGen && k < best) {
			best, bestGen = k, g
		}
		if State(e.state.Load()) == Closed && (g < bestClosedGen || (g == bestClosedGen && k < bestClosed)) {
			bestClosed, bestClosedGen = k, g
		}
	}
	if bestClosedGen != math.MaxUint64 {
		return bestClosed
	}
	return best
}

// entry is the breaker of one upstream: a gobreaker plus the recovery ramp, the retry budget and
// pre-built metric attributes.
type entry struct {
	key       string
	cb        *gobreaker.CircuitBreaker[struct{}]
	state     atomic.Int32 // State, as reported by gobreaker's callbacks and the ramp
	openedAt  atomic.Int64 // clock UnixNano when the breaker last opened
	rampStart atomic.Int64 // clock UnixNano when the ramp started; 0 when not recovering
	rampSeq   atomic.Uint64
	lastGen   atomic.Uint64
	used      atomic.Bool // set by requests, cleared by sweeps
	budget    retrybudget.Budget
	attrs     entryAttrs
}

func newEntry(b *Breaker, key string, gen uint64) *entry {
	e := &entry{key: key, attrs: newEntryAttrs(key)}
	e.lastGen.Store(gen)
	e.used.Store(true)
	c := &b.cfg
	st := gobreaker.Settings{
		Name:         key,
		MaxRequests:  uint32(c.probes),
		Interval:     c.window,
		BucketPeriod: c.window / 10,
		Timeout:      c.openTimeout,
		ReadyToTrip:  b.readyToTrip,
		IsSuccessful: isSuccess,
		IsExcluded:   isExcluded,
		OnStateChange: func(_ string, from, to gobreaker.State) {
			e.onStateChange(b, from, to)
		},
	}
	e.cb = gobreaker.NewCircuitBreaker[struct{}](st)
	return e
}

// Verdicts handed to gobreaker by the request functions.
var (
	errFailure  = &verdict{"failure"}
	errExcluded = &verdict{"excluded"}
)

type verdict struct{ s string }

func (v *verdict) Error() string { return "breaker: " + v.s }

func isSuccess(err error) bool  { return err == nil }
func isExcluded(err error) bool { return err == errExcluded }

func (b *Breaker) readyToTrip(c gobreaker.Counts) bool {
	if b.cfg.consecutive > 0 && c.ConsecutiveFailures >= uint32(b.cfg.consecutive) {
		return true
	}
	if b.cfg.ratio > 0 {
		done := uint64(c.TotalSuccesses) + uint64(c.TotalFailures)
		return done >= uint64(b.cfg.ratioMin) && float64(c.TotalFailures) >= b.cfg.ratio*float64(done)
	}
	return false
}

// onStateChange runs under gobreaker's mutex: it must not call back into e.cb.
func (e *entry) onStateChange(b *Breaker, from, to gobreaker.State) {
	prev := State(e.state.Load())
	now := b.cfg.clock.Now().UnixNano()
	var next State
	switch to {
	case gobreaker.StateOpen:
		e.rampStart.Store(0)
		e.openedAt.Store(now)
		next = Open
	case gobreaker.StateHalfOpen:
		next = HalfOpen
	default: // closed
		next = Closed
		if from == gobreaker.StateHalfOpen && b.cfg.rampStep > 0 {
			e.rampSeq.Store(0)
			e.rampStart.Store(now)
			next = Recovering
		}
	}
	e.state.Store(int32(next))
	b.tel.transition(e, prev, next)
}

// rampStage returns the ramp stage at now (0-based) and whether the ramp is still running; a
// finished ramp is ended here (the state becomes Closed).
func (e *entry) rampStage(b *Breaker, now int64) (stage int, start int64, running bool) {
	start = e.rampStart.Load()
	if start == 0 {
		return 0, 0, false
	}
	elapsed := now - start
	if elapsed < 0 {
		elapsed = 0
	}
	st := elapsed / int64(b.cfg.rampStep)
	if st >= int64(len(b.rampPPM)) {
		if e.rampStart.CompareAndSwap(start, 0) && e.state.CompareAndSwap(int32(Recovering), int32(Closed)) {
			b.tel.transition(e, Recovering, Closed)
		}
		return 0, 0, false
	}
	return int(st), start, true
}

// admit applies the recovery ramp. It returns nil when the request may go on to gobreaker.
func (e *entry) admit(b *Breaker) *OpenError {
	if e.rampStart.Load() == 0 {
		return nil
	}
	now := b.cfg.clock.Now().UnixNano()
	stage, start, running := e.rampStage(b, now)
	if !running {
		return nil
	}
	p := b.rampPPM[stage]
	n := e.rampSeq.Add(1)
	// Admit request n when ceil(n*p) crosses an integer: exactly the first of every 1/p requests.
	if (n*p+999_999)/1_000_000 > ((n-1)*p+999_999)/1_000_000 {
		return nil
	}
	wait := time.Duration(start + int64(stage+1)*int64(b.cfg.rampStep) - now)
	return e.reject(b, Recovering, wait)
}

// rejected converts gobreaker's rejection into an *OpenError.
func (e *entry) rejected(b *Breaker, err error) *OpenError {
	if err == gobreaker.ErrTooManyRequests {
		return e.reject(b, HalfOpen, time.Second)
	}
	wait := time.Duration(e.openedAt.Load() + int64(b.cfg.openTimeout) - b.cfg.clock.Now().UnixNano())
	return e.reject(b, Open, wait)
}

func (e *entry) reject(b *Breaker, s State, wait time.Duration) *OpenError {
	if wait < 0 {
		wait = 0
	}
	b.tel.rejected(e, s)
	return &OpenError{Upstream: e.key, State: s, RetryAfter: wait}
}

// isRejection reports whether err is gobreaker's refusal to run the request.
func isRejection(err error) bool {
	return err == gobreaker.ErrOpenState || err == gobreaker.ErrTooManyRequests
}

// problemFor builds the middleware's 503.
func openProblem(oe *OpenError) *gatewaykit.Problem {
	return gatewaykit.NewProblem(http.StatusServiceUnavailable, detailOpen).WithRetryAfter(oe.RetryAfter).WithErr(oe)
}
