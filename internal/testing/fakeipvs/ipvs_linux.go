//go:build linux

package fakeipvs

import (
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"syscall"

	mobyipvs "github.com/moby/ipvs"
)

// flagHashed is IP_VS_SVC_F_HASHED, which the kernel sets on every listed service.
const flagHashed = 0x0002

// Key identifies a virtual server.
type Key struct {
	Addr  netip.Addr
	Port  uint16
	Proto uint16
}

func (k Key) String() string {
	proto := map[uint16]string{syscall.IPPROTO_TCP: "TCP", syscall.IPPROTO_UDP: "UDP", syscall.IPPROTO_SCTP: "SCTP"}[k.Proto]
	if proto == "" {
		proto = fmt.Sprint(k.Proto)
	}
	return proto + "/" + netip.AddrPortFrom(k.Addr, k.Port).String()
}

// KeyOf is the key of a netlink service (fwmark services are not supported).
func KeyOf(s *mobyipvs.Service) Key {
	a, _ := netip.AddrFromSlice(s.Address)
	if s.AddressFamily == syscall.AF_INET {
		a = a.Unmap()
	}
	return Key{Addr: a, Port: s.Port, Proto: s.Protocol}
}

// DestAddr is a real server's address.
func DestAddr(d *mobyipvs.Destination) netip.AddrPort {
	a, _ := netip.AddrFromSlice(d.Address)
	if d.AddressFamily == syscall.AF_INET {
		a = a.Unmap()
	}
	return netip.AddrPortFrom(a, d.Port)
}

// IPVS is an in-memory IPVS table that logs every write. The zero value is not
// usable: call NewIPVS.
type IPVS struct {
	mu     sync.Mutex
	svcs   map[Key]*mobyipvs.Service
	dests  map[Key]map[netip.AddrPort]*mobyipvs.Destination
	writes []string
	config mobyipvs.Config
	refuse map[string]bool
}

// NewIPVS returns an empty table.
func NewIPVS() *IPVS {
	return &IPVS{svcs: map[Key]*mobyipvs.Service{}, dests: map[Key]map[netip.AddrPort]*mobyipvs.Destination{}}
}

func (f *IPVS) log(format string, a ...any) {
	f.writes = append(f.writes, fmt.Sprintf(format, a...))
}

// GetServices lists the virtual servers, flagged hashed as the kernel does.
func (f *IPVS) GetServices() ([]*mobyipvs.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*mobyipvs.Service, 0, len(f.svcs))
	for _, s := range f.svcs {
		c := *s
		c.Flags |= flagHashed
		out = append(out, &c)
	}
	return out, nil
}

// GetDestinations lists a virtual server's real servers.
func (f *IPVS) GetDestinations(s *mobyipvs.Service) ([]*mobyipvs.Destination, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := KeyOf(s)
	if f.svcs[k] == nil {
		return nil, fmt.Errorf("no such service %s", k)
	}
	out := make([]*mobyipvs.Destination, 0, len(f.dests[k]))
	for _, d := range f.dests[k] {
		c := *d
		out = append(out, &c)
	}
	return out, nil
}

// NewService adds a virtual server; an existing one or a refused scheduler fails.
func (f *IPVS) NewService(s *mobyipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := KeyOf(s)
	if f.refuse[s.SchedName] {
		return fmt.Errorf("scheduler %s: %w", s.SchedName, syscall.ENOENT)
	}
	if f.svcs[k] != nil {
		return fmt.Errorf("service %s: %w", k, syscall.EEXIST)
	}
	c := *s
	f.svcs[k] = &c
	f.dests[k] = map[netip.AddrPort]*mobyipvs.Destination{}
	f.log("new-service %s", k)
	return nil
}

// UpdateService replaces a virtual server's settings.
func (f *IPVS) UpdateService(s *mobyipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := KeyOf(s)
	if f.svcs[k] == nil {
		return fmt.Errorf("service %s: %w", k, syscall.ESRCH)
	}
	if f.refuse[s.SchedName] {
		return fmt.Errorf("scheduler %s: %w", s.SchedName, syscall.ENOENT)
	}
	c := *s
	f.svcs[k] = &c
	f.log("update-service %s", k)
	return nil
}

// DelService removes a virtual server with its real servers.
func (f *IPVS) DelService(s *mobyipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := KeyOf(s)
	if f.svcs[k] == nil {
		return fmt.Errorf("service %s: %w", k, syscall.ESRCH)
	}
	delete(f.svcs, k)
	delete(f.dests, k)
	f.log("del-service %s", k)
	return nil
}

// NewDestination adds a real server.
func (f *IPVS) NewDestination(s *mobyipvs.Service, d *mobyipvs.Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := KeyOf(s)
	if f.svcs[k] == nil {
		return fmt.Errorf("service %s: %w", k, syscall.ESRCH)
	}
	a := DestAddr(d)
	if f.dests[k][a] != nil {
		return fmt.Errorf("real server %s of %s: %w", a, k, syscall.EEXIST)
	}
	c := *d
	f.dests[k][a] = &c
	f.log("new-dest %s %s w=%d", k, a, d.Weight)
	return nil
}

// UpdateDestination changes a real server's weight.
func (f *IPVS) UpdateDestination(s *mobyipvs.Service, d *mobyipvs.Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := KeyOf(s)
	a := DestAddr(d)
	cur := f.dests[k][a]
	if cur == nil {
		return fmt.Errorf("real server %s of %s: %w", a, k, syscall.ENOENT)
	}
	cur.Weight = d.Weight
	f.log("update-dest %s %s w=%d", k, a, d.Weight)
	return nil
}

// DelDestination removes a real server.
func (f *IPVS) DelDestination(s *mobyipvs.Service, d *mobyipvs.Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := KeyOf(s)
	a := DestAddr(d)
	if f.dests[k][a] == nil {
		return fmt.Errorf("real server %s of %s: %w", a, k, syscall.ENOENT)
	}
	delete(f.dests[k], a)
	f.log("del-dest %s %s", k, a)
	return nil
}

// GetConfig returns the timeouts.
func (f *IPVS) GetConfig() (*mobyipvs.Config, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.config
	return &c, nil
}

// SetConfig sets the timeouts.
func (f *IPVS) SetConfig(c *mobyipvs.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.config = *c
	f.log("set-config")
	return nil
}

// Refuse makes NewService and UpdateService fail for these schedulers, as a kernel
// without their modules does; no argument accepts every scheduler again.
func (f *IPVS) Refuse(schedulers ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse = map[string]bool{}
	for _, s := range schedulers {
		f.refuse[s] = true
	}
}

// SetConns sets a real server's connection counters.
func (f *IPVS) SetConns(k Key, a netip.AddrPort, active, inactive int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.dests[k][a]
	d.ActiveConnections, d.InactiveConnections = active, inactive
}

// TakeWrites returns the writes logged since the last call.
func (f *IPVS) TakeWrites() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.writes
	f.writes = nil
	return w
}

// Service returns a copy of a virtual server, nil if absent.
func (f *IPVS) Service(k Key) *mobyipvs.Service {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.svcs[k]; s != nil {
		c := *s
		return &c
	}
	return nil
}

// Len counts the virtual servers.
func (f *IPVS) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.svcs)
}

// Destinations returns copies of a virtual server's real servers by address.
func (f *IPVS) Destinations(k Key) map[netip.AddrPort]mobyipvs.Destination {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[netip.AddrPort]mobyipvs.Destination{}
	for a, d := range f.dests[k] {
		out[a] = *d
	}
	return out
}

// Dump prints the table in a stable text form: one line per virtual server
// (scheduler, flags, timeout) followed by its real servers and weights.
func (f *IPVS) Dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	keys := make([]Key, 0, len(f.svcs))
	for k := range f.svcs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	var out string
	for _, k := range keys {
		s := f.svcs[k]
		out += fmt.Sprintf("%s %s flags 0x%x timeout %d\n", k, s.SchedName, s.Flags, s.Timeout)
		var rs []string
		for a, d := range f.dests[k] {
			rs = append(rs, fmt.Sprintf("  -> %s weight %d fwd %d\n", a, d.Weight, d.ConnectionFlags))
		}
		sort.Strings(rs)
		for _, r := range rs {
			out += r
		}
	}
	return out
}
