// Command bench measures gatewaykit's proxy path side by side with a direct connection, a bare
// default httputil.ReverseProxy and, when installed, nginx and Caddy, in one interleaved run.
//
//	go run ./bench            # full run: 5 rounds, closed loop + open loop at 1,000 and 5,000 req/s
//	go run ./bench -short     # a quick run (2 rounds, short durations)
//
// Every target runs in its own process on a loopback port (the harness re-executes itself with
// -role), so the load generator and the proxies do not share a Go runtime. Closed-loop throughput
// uses wrk when installed (it costs the machine less CPU than a Go client) and vegeta otherwise;
// open-loop latency uses vegeta at a fixed rate, with latency measured from each request's
// scheduled send time, so a stalled server cannot hide its queueing (no coordinated omission).
// Results (markdown table, JSON and a PNG chart) go to -out.
package main
