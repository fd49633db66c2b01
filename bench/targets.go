package main

import "net/http"

// gatewaykitTarget is a gatewaykit configuration under test, run as its own process (-role name).
type gatewaykitTarget struct {
	name, desc string
	needsToken bool
}

// gatewaykitTargets are measured after "bare", in this order.
var gatewaykitTargets = []gatewaykitTarget{}

// gatewaykitRoles builds each gatewaykit target's handler over the backend addresses.
var gatewaykitRoles = map[string]func(upstreams []string) (http.Handler, func(), error){}
