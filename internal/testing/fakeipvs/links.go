package fakeipvs

import (
	"fmt"
	"net/netip"
	"sort"
	"sync"
)

// Links holds links (by name) and their addresses. The zero value has no links.
//
// The addresses are what kproxy makes local through a link (its local routes).
// Interface addresses, which kube-proxy or an older kproxy bound, are kept
// apart (BindIfAddr, IfAddrs); like the kernel, removing a link's last IPv4
// interface address drops every IPv4 route through the link.
type Links struct {
	mu      sync.Mutex
	links   map[string]map[netip.Addr]bool
	ifAddrs map[string]map[netip.Addr]bool
	writes  int
}

// EnsureDummy creates the link unless it exists.
func (l *Links) EnsureDummy(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.links == nil {
		l.links = map[string]map[netip.Addr]bool{}
	}
	if l.links[name] == nil {
		l.links[name] = map[netip.Addr]bool{}
	}
	return nil
}

// Addrs lists the link's addresses, sorted; an absent link has none.
func (l *Links) Addrs(name string) ([]netip.Addr, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []netip.Addr{}
	for a := range l.links[name] {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out, nil
}

// AddAddr adds an address; the link must exist. Like the netlink implementation it
// accepts an address that is already there.
func (l *Links) AddAddr(name string, a netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	addrs := l.links[name]
	if addrs == nil {
		return fmt.Errorf("link %s not found", name)
	}
	addrs[a] = true
	l.writes++
	return nil
}

// AddAddrs adds each address as AddAddr does.
func (l *Links) AddAddrs(name string, addrs []netip.Addr) []error {
	errs := make([]error, len(addrs))
	for i, a := range addrs {
		errs[i] = l.AddAddr(name, a)
	}
	return errs
}

// DelAddr removes an address; the link must exist, the address need not (as in the
// netlink implementation).
func (l *Links) DelAddr(name string, a netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.links[name] == nil {
		return fmt.Errorf("link %s not found", name)
	}
	delete(l.links[name], a)
	l.writes++
	return nil
}

// DeleteLink removes the link and its addresses; an absent link is fine.
func (l *Links) DeleteLink(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.links, name)
	delete(l.ifAddrs, name)
	return nil
}

// BindIfAddr puts an interface address on the link, as kube-proxy does; the link
// must exist.
func (l *Links) BindIfAddr(name string, a netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.links[name] == nil {
		return fmt.Errorf("link %s not found", name)
	}
	if l.ifAddrs == nil {
		l.ifAddrs = map[string]map[netip.Addr]bool{}
	}
	if l.ifAddrs[name] == nil {
		l.ifAddrs[name] = map[netip.Addr]bool{}
	}
	l.ifAddrs[name][a] = true
	return nil
}

// IfAddrs lists the link's interface addresses, sorted.
func (l *Links) IfAddrs(name string) ([]netip.Addr, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []netip.Addr{}
	for a := range l.ifAddrs[name] {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out, nil
}

// DelIfAddr removes an interface address; with the link's last IPv4 one go its
// IPv4 routes, as in the kernel (fib_disable_ip).
func (l *Links) DelIfAddr(name string, a netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.links[name] == nil {
		return fmt.Errorf("link %s not found", name)
	}
	if !l.ifAddrs[name][a] {
		return nil
	}
	delete(l.ifAddrs[name], a)
	l.writes++
	if !a.Is4() {
		return nil
	}
	for b := range l.ifAddrs[name] {
		if b.Is4() {
			return nil
		}
	}
	for b := range l.links[name] {
		if b.Is4() {
			delete(l.links[name], b)
		}
	}
	return nil
}

// Exists reports whether the link exists.
func (l *Links) Exists(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.links[name] != nil
}

// Has reports whether the link holds the address.
func (l *Links) Has(name string, a netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.links[name][a]
}

// Writes counts address changes.
func (l *Links) Writes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.writes
}

// Sysctl is a map of /proc/sys entries ("net/ipv4/ip_forward").
type Sysctl struct {
	mu sync.Mutex
	m  map[string]string
}

// NewSysctl returns entries preset to values.
func NewSysctl(values map[string]string) *Sysctl {
	m := map[string]string{}
	for k, v := range values {
		m[k] = v
	}
	return &Sysctl{m: m}
}

// Get returns an entry ("" if never set).
func (s *Sysctl) Get(name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name], nil
}

// Set writes an entry.
func (s *Sysctl) Set(name, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]string{}
	}
	s.m[name] = value
	return nil
}
