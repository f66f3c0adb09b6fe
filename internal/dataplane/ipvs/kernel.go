//go:build linux

package ipvs

import (
	"context"
	"net/netip"

	mobyipvs "github.com/moby/ipvs"
)

// IPVS is the slice of the IPVS netlink API the dataplane uses. *ipvs.Handle from
// github.com/moby/ipvs implements it.
type IPVS interface {
	GetServices() ([]*mobyipvs.Service, error)
	GetDestinations(s *mobyipvs.Service) ([]*mobyipvs.Destination, error)
	NewService(s *mobyipvs.Service) error
	UpdateService(s *mobyipvs.Service) error
	DelService(s *mobyipvs.Service) error
	NewDestination(s *mobyipvs.Service, d *mobyipvs.Destination) error
	UpdateDestination(s *mobyipvs.Service, d *mobyipvs.Destination) error
	DelDestination(s *mobyipvs.Service, d *mobyipvs.Destination) error
	GetConfig() (*mobyipvs.Config, error)
	SetConfig(c *mobyipvs.Config) error
}

// Links manages the dummy link and the Service addresses made local through it.
// A Service address is a local route through the link (localroute: table local,
// protocol 107), not an interface address: adding n interface addresses to one
// device costs the kernel O(n²).
type Links interface {
	// EnsureDummy creates the link if it does not exist, and sets it up (the
	// kernel refuses IPv6 routes through a link that is down).
	EnsureDummy(name string) error
	// Addrs lists the addresses made local through the link (kproxy's local
	// routes); an absent link has none.
	Addrs(name string) ([]netip.Addr, error)
	AddAddr(name string, a netip.Addr) error
	// AddAddrs makes many addresses local at once (a full sync's); one error per address.
	AddAddrs(name string, addrs []netip.Addr) []error
	DelAddr(name string, a netip.Addr) error
	// IfAddrs lists the interface addresses on the link, IPv6 link-local ones
	// left out: those kube-proxy or an older kproxy bound, for a takeover.
	IfAddrs(name string) ([]netip.Addr, error)
	// DelIfAddr removes an interface address from the link.
	DelIfAddr(name string, a netip.Addr) error
	// DeleteLink removes the link; an absent link is not an error.
	DeleteLink(name string) error
}

// IPSet runs the ipset tool.
type IPSet interface {
	// Restore feeds `ipset restore -exist`.
	Restore(ctx context.Context, text string) error
	// Save returns `ipset save` output for every set.
	Save(ctx context.Context) (string, error)
	// Destroy destroys the named sets, ignoring sets that do not exist.
	Destroy(ctx context.Context, names []string) error
}

// Iptables runs iptables-restore and iptables for one family.
type Iptables interface {
	// Restore feeds `iptables-restore --noflush` (chains declared in the input are
	// flushed, others kept).
	Restore(ctx context.Context, v6 bool, text string) error
	// Save returns iptables-save output of every table.
	Save(ctx context.Context, v6 bool) (string, error)
	// EnsureRule inserts the rule at the top of chain unless it exists.
	EnsureRule(ctx context.Context, v6 bool, table, chain string, args []string) error
	// DeleteRule deletes the rule if it exists.
	DeleteRule(ctx context.Context, v6 bool, table, chain string, args []string) error
}

// Sysctl reads and writes /proc/sys entries ("net/ipv4/vs/conntrack").
type Sysctl interface {
	Get(name string) (string, error)
	Set(name, value string) error
}

// Kernel bundles the kernel interfaces; tests replace each with a fake.
type Kernel struct {
	IPVS IPVS
	// Batch creates a full sync's new virtual and real servers in few netlink
	// messages; nil creates them one by one through IPVS.
	Batch    IPVSBatch
	Links    Links
	IPSet    IPSet
	Iptables Iptables
	Sysctl   Sysctl
	// LocalAddrs lists the node's interface addresses (nodeaddr.LocalAddresses).
	LocalAddrs func() ([]netip.Addr, error)
}
