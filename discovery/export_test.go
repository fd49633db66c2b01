package discovery

// SetInFlight sets an endpoint's in-flight count, for balancer tests.
func SetInFlight(e *Endpoint, n int64) { e.inflight.Store(n) }
