// Package ebpf is the ebpf proxy mode: socket-level load balancing for ClusterIP
// Services. cgroup sock_addr programs, written in Go with cilium/ebpf's asm package,
// translate a Service address to a backend inside connect() and sendmsg() and back
// inside recvmsg() and getpeername(), so east-west traffic needs no per-packet NAT
// and no conntrack entry. North-south traffic (NodePort, LoadBalancer, externalIPs)
// is left to the nftables mode, run in the same process. See README.md.
//
// The package is split the way the other modes are: model.go, render.go and
// table.go are pure (snapshot -> desired map contents -> a diff of map entries) and
// build on every OS; the *_linux.go files load the programs, own the pinned maps and
// links, and apply diffs to the kernel.
package ebpf
