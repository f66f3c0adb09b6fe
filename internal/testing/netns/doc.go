// Package netns builds small real-kernel topologies for tests: a "node" network
// namespace that runs the proxy, backend namespaces ("pods") and client namespaces
// connected to it by veth pairs, and TCP/UDP servers that answer with their own name.
// Everything is removed on t.Cleanup, even when the test fails.
//
// Sockets are opened from a thread switched into the namespace, so servers and
// clients run inside the test process without helper binaries:
//
//	env := netns.New(t, "iptables")
//	be := env.AddBackend("web-0")       // 10.244.1.2, gateway 10.244.1.1 on the node
//	be.ServeTCP(t, 8080)                // answers "web-0\n"
//	cl := env.AddClient("client")       // 192.168.1.2, node side 192.168.1.1
//	got, err := cl.AskTCP("10.96.0.10:80", time.Second)
//
// Only tests use this package. Every name starts with the prefix given to New, so
// engineers running tests in parallel never collide.
package netns
