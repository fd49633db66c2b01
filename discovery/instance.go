package discovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
)

// Instance is one healthy network endpoint of a service, as a Resolver reports it. Resolvers share
// the Instance values (and their Tags and Meta) between readers: treat them as read-only.
type Instance struct {
	// ID identifies the instance within its service. Empty means "Address:Port".
	ID string
	// Address is the host name or IP address to dial.
	Address string
	// Port is the TCP port, 1..65535.
	Port int
	// Tags are free-form labels (for example a version, "v2"), used for header-based routing.
	Tags []string
	// Meta is free-form key/value metadata. May be nil.
	Meta map[string]string
	// Weight is the relative share of traffic for weighted balancers. Zero or negative means 1.
	Weight int
}

// HostPort returns "Address:Port" (IPv6 addresses in brackets).
func (in Instance) HostPort() string {
	return net.JoinHostPort(in.Address, strconv.Itoa(in.Port))
}

// HasTag reports whether the instance carries tag (exact match).
func (in Instance) HasTag(tag string) bool { return slices.Contains(in.Tags, tag) }

func (in Instance) key() string {
	if in.ID != "" {
		return in.ID
	}
	return in.HostPort()
}

func (in Instance) weight() int {
	if in.Weight <= 0 {
		return 1
	}
	return in.Weight
}

func (in Instance) validate() error {
	if in.Address == "" {
		return errors.New("address is empty")
	}
	if in.Port < 1 || in.Port > 65535 {
		return fmt.Errorf("port %d out of range 1..65535", in.Port)
	}
	return nil
}

// ErrUnknownService is returned by resolvers for a service they know nothing about.
var ErrUnknownService = errors.New("discovery: unknown service")

// Resolver finds the healthy instances of services. Implementations must be safe for concurrent
// use. The slices they return or pass to watchers are shared: callers must not modify them.
type Resolver interface {
	// Instances returns the currently known healthy instances of service. An empty slice with a nil
	// error means the service exists but has no healthy instance.
	Instances(ctx context.Context, service string) ([]Instance, error)
	// Watch calls fn with the healthy instances of service as soon as they are known, then again
	// after every change, until stop is called. Calls to fn are serialized; fn must not block for
	// long. After stop returns, fn is not called again.
	Watch(service string, fn func([]Instance)) (stop func(), err error)
}

// equalInstances reports whether a and b hold the same instances in the same order.
func equalInstances(a, b []Instance) bool {
	return slices.EqualFunc(a, b, func(x, y Instance) bool {
		return x.ID == y.ID && x.Address == y.Address && x.Port == y.Port && x.Weight == y.Weight &&
			slices.Equal(x.Tags, y.Tags) && maps.Equal(x.Meta, y.Meta)
	})
}
