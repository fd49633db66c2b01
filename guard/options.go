package guard

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gatewaykit/gatewaykit"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// Option configures one of the guard constructors. Options are shared by the constructors of this
// package; an option that does not apply to a constructor makes it return an error (for example
// MaxBodyBytes passed to NewIPFilter), so a misplaced option never goes unnoticed.
type Option func(*config) error

type kind uint8

const (
	kindPath kind = 1 << iota
	kindIP
	kindLimits
	kindConcurrency
	kindHeaders
	kindCORS
)

func (k kind) String() string {
	switch k {
	case kindPath:
		return "NewPathSafety"
	case kindIP:
		return "NewIPFilter"
	case kindLimits:
		return "NewLimits"
	case kindConcurrency:
		return "NewConcurrency"
	case kindHeaders:
		return "NewSecurityHeaders"
	case kindCORS:
		return "NewCORS"
	}
	return "guard"
}

// config holds the settings of every guard; each constructor reads the fields it owns.
type config struct {
	kind  kind
	onErr gatewaykit.ErrorHandler
	meter metric.MeterProvider
	ips   *gatewaykit.ClientIPResolver

	// path safety
	allowed Rule

	// ip filter
	allow, deny []string

	// limits
	maxBody, maxHeaderBytes, maxURL, maxHeaders int64

	// concurrency
	perKeyMax  int
	keyFunc    func(*http.Request) string
	queue      int
	queueSet   bool
	maxWait    time.Duration
	retryAfter time.Duration

	// security headers
	headers []headerValue // in option order; later entries win
	hsts    *string

	// cors
	methods, allowHeaders, expose []string
	credentials                   bool
	maxAge                        *time.Duration
}

// applies returns an error when the option named name is used with a constructor it does not
// apply to.
func (c *config) applies(name string, k kind) error {
	if c.kind&k == 0 {
		return fmt.Errorf("guard: option %s does not apply to %s", name, c.kind)
	}
	return nil
}

func newConfig(k kind, opts []Option) (*config, error) {
	c := &config{kind: k}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("guard: nil option")
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	c.onErr = c.onErr.Or()
	if c.meter == nil {
		c.meter = otel.GetMeterProvider()
	}
	return c, nil
}

// WithErrorHandler replaces the response written for rejected requests (default
// gatewaykit.WriteProblem). The Problem passed to it carries the status, a client-safe detail and
// the headers to send (Retry-After, Allow). Applies to every constructor that rejects requests.
func WithErrorHandler(h gatewaykit.ErrorHandler) Option {
	return func(c *config) error {
		if err := c.applies("WithErrorHandler", kindPath|kindIP|kindLimits|kindConcurrency|kindCORS); err != nil {
			return err
		}
		if h == nil {
			return errors.New("guard: WithErrorHandler: nil handler")
		}
		c.onErr = h
		return nil
	}
}

// WithMeterProvider sets the meter provider for the gatewaykit.guard.rejections counter (default
// otel.GetMeterProvider() at construction time). Applies to every constructor.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return errors.New("guard: WithMeterProvider: nil provider")
		}
		c.meter = mp
		return nil
	}
}

// WithClientIP sets the resolver that finds the client address (default: a nil resolver, which
// trusts no proxy and uses the TCP peer). NewIPFilter matches its lists against the resolved
// address; NewSecurityHeaders trusts X-Forwarded-Proto only from a peer the resolver trusts.
func WithClientIP(res *gatewaykit.ClientIPResolver) Option {
	return func(c *config) error {
		if err := c.applies("WithClientIP", kindIP|kindHeaders); err != nil {
			return err
		}
		if res == nil {
			return errors.New("guard: WithClientIP: nil resolver")
		}
		c.ips = res
		return nil
	}
}
