// Package localroute makes an address local to this host with a route of type
// local in the local table (`ip route add local A/32 dev D table local proto 107
// scope host`) instead of an interface address: the kernel walks a device's whole
// address list (and, for IPv4, re-checks every route through the device) on each
// address added or removed, so n addresses cost O(n²), while a route is one trie
// insert. Such an address is as local as an interface address for routing,
// replies, iptables' addrtype LOCAL and (IPv4) bind; a local connection to it
// has it as source (a local route without prefsrc gives daddr as saddr). The
// userspace mode (kproxy0) and the ipvs mode (kube-ipvs0) use it.
package localroute
