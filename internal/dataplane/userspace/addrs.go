package userspace

import "net/netip"

// Names of what kproxy adds to the host for Service addresses that are not local.
const (
	// dummyLink holds Service addresses, like kube-proxy's kube-ipvs0.
	dummyLink = "kproxy0"
	// loLabel marks IPv4 addresses kproxy put on lo when dummy links are missing, so
	// that `kproxy --cleanup` can find them without a running daemon.
	loLabel = "lo:kproxy"
)

// addrManager puts Service addresses on the host so that the relay can listen on them.
type addrManager interface {
	// canAdd reports whether the process may add addresses (it runs as root).
	canAdd() bool
	add(a netip.Addr) error
	remove(a netip.Addr) error
	// cleanup removes every address this manager added, and kproxy0 if it made it.
	cleanup() error
	// adopt lists the addresses an earlier kproxy left (on kproxy0, or on lo with
	// the lo:kproxy label) and takes them over, so that remove works on them.
	adopt() ([]netip.Addr, error)
}
