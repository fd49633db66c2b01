// Package consultest starts a private, real Consul agent in dev mode (consul agent -dev) on free
// loopback ports for one test, so that discovery tests run against the real health and blocking
// query APIs and fault tests can stop and restart the agent.
//
// The binary is $GATEWAYKIT_CONSUL, consul on PATH, or the path printed by
// ../shared/tools/consul.sh (relative to the module root) when that script exists; the script
// builds Consul once per machine and caches it. When none is found the test is skipped with
// instructions, or fails when GATEWAYKIT_REQUIRE_SERVICES=1.
package consultest
