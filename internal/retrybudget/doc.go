// Package retrybudget bounds retries to floor + ratio * requests over a rolling window of ten
// one-second slots, so retries cannot multiply the load of an outage. breaker keeps one Budget per
// upstream, discovery one per Proxy.
package retrybudget
