// Package redistest starts a private, real redis-server on a free loopback port for one test, so
// that tests never share state with each other or with the machine's own Redis, and so that fault
// tests can stop, kill and restart it.
//
// The binary is $GATEWAYKIT_REDIS_SERVER or redis-server on PATH (Debian package redis-server).
// When it is missing the test is skipped with instructions, or fails when
// GATEWAYKIT_REQUIRE_SERVICES=1.
package redistest
