// Package ipvs is kproxy's IPVS dataplane (mode "ipvs"). Every Service address is made
// local with a local route through the dummy link kube-ipvs0 (not an interface
// address on it, as in kube-proxy: see README.md), every address:port:protocol is an IPVS virtual server
// with the Service's endpoints as masquerading real servers, and a constant set of
// iptables rules matches ipsets for masquerade, NodePorts and source ranges.
//
// Sync renders only the ServicePorts that changed (a pure function, render.go) and
// diffs the result against an in-memory model of what it programmed, so an unchanged
// Service costs nothing. A full sync (the first one, and after any failure) diffs
// against what the kernel reports instead. All kernel access goes through the narrow
// interfaces in kernel.go; unit tests use fakes, and the tests in test/e2e/ipvs run
// the real thing in a qemu VM (internal/vm). See README.md for the layout.
package ipvs
