package conntrack

import "net/netip"

// NATFlow is one conntrack entry whose original destination was rewritten: what
// the client asked for and where the connection actually went.
type NATFlow struct {
	Protocol uint8
	Source   netip.Addr
	// Original is the destination the client used (a Service address).
	Original netip.AddrPort
	// Endpoint is where the kernel sent it (the reply's source).
	Endpoint netip.AddrPort
}
