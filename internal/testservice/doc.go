// Package testservice holds what redistest and consultest share: finding a server binary, picking
// free loopback ports, and skipping or failing a test when the binary is missing.
package testservice
