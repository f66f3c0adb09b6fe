//go:build linux

package ipvs

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"

	mobyipvs "github.com/moby/ipvs"
)

// fakeIPVS is an in-memory IPVS table that counts writes.
type fakeIPVS struct {
	mu     sync.Mutex
	svcs   map[vsKey]*mobyipvs.Service
	dests  map[vsKey]map[netip.AddrPort]*mobyipvs.Destination
	writes []string
	config mobyipvs.Config
	refuse map[string]bool // schedulers the "kernel" lacks
}

func newFakeIPVS() *fakeIPVS {
	return &fakeIPVS{svcs: map[vsKey]*mobyipvs.Service{}, dests: map[vsKey]map[netip.AddrPort]*mobyipvs.Destination{}}
}

func keyOf(s *mobyipvs.Service) vsKey {
	vs, _ := fromService(s)
	return vs.Key
}

func (f *fakeIPVS) log(format string, a ...any) {
	f.writes = append(f.writes, fmt.Sprintf(format, a...))
}

func (f *fakeIPVS) GetServices() ([]*mobyipvs.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*mobyipvs.Service
	for _, s := range f.svcs {
		c := *s
		c.Flags |= flagHashed
		out = append(out, &c)
	}
	return out, nil
}

func (f *fakeIPVS) GetDestinations(s *mobyipvs.Service) ([]*mobyipvs.Destination, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := keyOf(s)
	if f.svcs[k] == nil {
		return nil, fmt.Errorf("no such service %s", k)
	}
	var out []*mobyipvs.Destination
	for _, d := range f.dests[k] {
		c := *d
		out = append(out, &c)
	}
	return out, nil
}

func (f *fakeIPVS) NewService(s *mobyipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := keyOf(s)
	if f.refuse[s.SchedName] {
		return fmt.Errorf("no such file or directory")
	}
	if f.svcs[k] != nil {
		return fmt.Errorf("file exists")
	}
	c := *s
	f.svcs[k] = &c
	f.dests[k] = map[netip.AddrPort]*mobyipvs.Destination{}
	f.log("new-service %s", k)
	return nil
}

func (f *fakeIPVS) UpdateService(s *mobyipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := keyOf(s)
	if f.svcs[k] == nil {
		return fmt.Errorf("no such service")
	}
	c := *s
	f.svcs[k] = &c
	f.log("update-service %s", k)
	return nil
}

func (f *fakeIPVS) DelService(s *mobyipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := keyOf(s)
	if f.svcs[k] == nil {
		return fmt.Errorf("no such service")
	}
	delete(f.svcs, k)
	delete(f.dests, k)
	f.log("del-service %s", k)
	return nil
}

func (f *fakeIPVS) NewDestination(s *mobyipvs.Service, d *mobyipvs.Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := keyOf(s)
	if f.svcs[k] == nil {
		return fmt.Errorf("no such service")
	}
	a := destAddr(d)
	if f.dests[k][a] != nil {
		return fmt.Errorf("file exists")
	}
	c := *d
	f.dests[k][a] = &c
	f.log("new-dest %s %s w=%d", k, a, d.Weight)
	return nil
}

func (f *fakeIPVS) UpdateDestination(s *mobyipvs.Service, d *mobyipvs.Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := keyOf(s)
	a := destAddr(d)
	cur := f.dests[k][a]
	if cur == nil {
		return fmt.Errorf("no such destination")
	}
	cur.Weight = d.Weight
	f.log("update-dest %s %s w=%d", k, a, d.Weight)
	return nil
}

func (f *fakeIPVS) DelDestination(s *mobyipvs.Service, d *mobyipvs.Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := keyOf(s)
	a := destAddr(d)
	if f.dests[k][a] == nil {
		return fmt.Errorf("no such destination")
	}
	delete(f.dests[k], a)
	f.log("del-dest %s %s", k, a)
	return nil
}

func (f *fakeIPVS) GetConfig() (*mobyipvs.Config, error) { c := f.config; return &c, nil }
func (f *fakeIPVS) SetConfig(c *mobyipvs.Config) error {
	f.config = *c
	f.log("set-config")
	return nil
}

// setConns sets a real server's connection counters.
func (f *fakeIPVS) setConns(k vsKey, a netip.AddrPort, active, inactive int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.dests[k][a]
	d.ActiveConnections, d.InactiveConnections = active, inactive
}

func (f *fakeIPVS) takeWrites() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.writes
	f.writes = nil
	return w
}

// fakeLinks holds one link's addresses.
type fakeLinks struct {
	exists bool
	addrs  map[netip.Addr]bool
	writes int
}

func newFakeLinks() *fakeLinks { return &fakeLinks{addrs: map[netip.Addr]bool{}} }

func (l *fakeLinks) EnsureDummy(string) error { l.exists = true; return nil }
func (l *fakeLinks) Addrs(string) ([]netip.Addr, error) {
	var out []netip.Addr
	for a := range l.addrs {
		out = append(out, a)
	}
	return out, nil
}
func (l *fakeLinks) AddAddr(_ string, a netip.Addr) error {
	if !l.exists {
		return fmt.Errorf("no link")
	}
	l.addrs[a] = true
	l.writes++
	return nil
}
func (l *fakeLinks) DelAddr(_ string, a netip.Addr) error {
	delete(l.addrs, a)
	l.writes++
	return nil
}
func (l *fakeLinks) DeleteLink(string) error {
	l.exists = false
	l.addrs = map[netip.Addr]bool{}
	return nil
}

// fakeIPSet interprets the restore lines it is fed.
type fakeIPSet struct {
	sets     map[string]map[string]bool
	restores []string
}

func newFakeIPSet() *fakeIPSet { return &fakeIPSet{sets: map[string]map[string]bool{}} }

func (s *fakeIPSet) Restore(_ context.Context, text string) error {
	s.restores = append(s.restores, text)
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "create":
			if s.sets[f[1]] == nil {
				s.sets[f[1]] = map[string]bool{}
			}
		case "add":
			if s.sets[f[1]] == nil {
				return fmt.Errorf("set %s does not exist", f[1])
			}
			s.sets[f[1]][f[2]] = true
		case "del":
			delete(s.sets[f[1]], f[2])
		}
	}
	return nil
}

func (s *fakeIPSet) Save(context.Context) (string, error) {
	var lines []string
	for name, entries := range s.sets {
		lines = append(lines, "create "+name+" hash:ip,port")
		for e := range entries {
			lines = append(lines, "add "+name+" "+e)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n"), nil
}

func (s *fakeIPSet) Destroy(_ context.Context, names []string) error {
	for _, n := range names {
		delete(s.sets, n)
	}
	return nil
}

// entries counts ipset entries (not restores of create lines).
func (s *fakeIPSet) has(set, entry string) bool { return s.sets[set][entry] }

type fakeIptables struct {
	restores []string
	rules    map[string]bool
	saved    map[bool]map[string]bool // family -> save lines of inserted rules
	chains   map[bool]bool            // family -> our chains exist
	checks   int                      // EnsureRule calls
}

func newFakeIptables() *fakeIptables {
	return &fakeIptables{rules: map[string]bool{}, saved: map[bool]map[string]bool{false: {}, true: {}}, chains: map[bool]bool{}}
}

func (f *fakeIptables) Restore(_ context.Context, v6 bool, text string) error {
	f.restores = append(f.restores, text)
	f.chains[v6] = !strings.Contains(text, "-X "+chainServices)
	return nil
}

// Save prints what iptables-save would: our chain when it exists and the rules.
func (f *fakeIptables) Save(_ context.Context, v6 bool) (string, error) {
	var b strings.Builder
	if f.chains[v6] {
		b.WriteString(":" + chainServices + " - [0:0]\n")
	}
	for l := range f.saved[v6] {
		b.WriteString(l)
	}
	return b.String(), nil
}

func (f *fakeIptables) EnsureRule(_ context.Context, v6 bool, table, chain string, args []string) error {
	f.checks++
	f.rules[fmt.Sprint(v6, table, chain, args)] = true
	f.saved[v6][jumpRule{table, chain, args}.saveLine()] = true
	return nil
}
func (f *fakeIptables) DeleteRule(_ context.Context, v6 bool, table, chain string, args []string) error {
	delete(f.rules, fmt.Sprint(v6, table, chain, args))
	delete(f.saved[v6], jumpRule{table, chain, args}.saveLine())
	return nil
}

type fakeSysctl map[string]string

func (s fakeSysctl) Get(n string) (string, error) { return s[n], nil }
func (s fakeSysctl) Set(n, v string) error        { s[n] = v; return nil }
