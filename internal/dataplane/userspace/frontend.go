package userspace

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/lb"
	"kproxy.dev/kproxy/internal/state"
)

// feKey identifies one listening socket: a virtual service in IPVS terms.
type feKey struct {
	proto v1.Protocol
	addr  netip.AddrPort
}

func (k feKey) String() string { return string(k.proto) + " " + k.addr.String() }

// feKind says which Service field a frontend serves; it decides the traffic policy.
type feKind int

const (
	kindClusterIP feKind = iota
	kindExternalIP
	kindLoadBalancer
	kindNodePort
)

func (k feKind) String() string {
	return [...]string{"clusterIP", "externalIP", "loadBalancerIP", "nodePort"}[k]
}

// feSpec is a frontend the snapshot asks for.
type feSpec struct {
	key  feKey
	kind feKind
}

// frontend is one listener and the relays it started.
type frontend struct {
	feSpec
	svc state.ServicePortName
	// addedAddr is true when kproxy added key.addr to the host for this frontend.
	addedAddr bool

	tcp *net.TCPListener
	udp *udpFrontend
	cfg atomic.Pointer[feConfig]
	// open counts the relays (TCP connections, UDP flows) still running.
	open      atomic.Int64
	closeOnce sync.Once
}

// feConfig is what a frontend needs to place a new connection. Sync swaps in a new
// one; relays keep the one they started with.
type feConfig struct {
	sched lb.Scheduler
	// want and wantFlags are what the Service asked for; sched is the default
	// scheduler when that could not be built.
	want      string
	wantFlags []string
	flags     []string
	// list is the backend set in scheduler order, for comparisons and listing.
	list     []lb.Backend
	backends map[netip.AddrPort]*backend
	affinity *affinity
	// sourceRanges restricts load-balancer frontends to the Service's
	// loadBalancerSourceRanges; nil allows every client.
	sourceRanges []netip.Prefix
	// current maps the endpoints of list to their weights. backends may hold a few
	// more: those the shared scheduler may still return until updateAfterStore.
	current map[netip.AddrPort]int
	// updateAfterStore is set when sched is shared with the config being replaced:
	// Sync installs the config first and then updates the scheduler, so that every
	// backend a concurrent Pick returns is in the config the connection loads.
	updateAfterStore bool
}

// backend is one endpoint as seen from one frontend, with its traffic counters.
type backend struct {
	addr netip.AddrPort
	// local is true for endpoints on this node, where relay sockets use small buffers.
	local  bool
	stats  counters
	metric *backendMetric
}

// service is one ServicePort and the frontends it owns.
type service struct {
	name      state.ServicePortName
	sp        *state.ServicePort
	frontends map[feKey]*frontend
	// metrics holds the per-endpoint metric series of this ServicePort.
	metrics map[netip.AddrPort]*backendMetric
}

// desiredFrontends lists the listeners a ServicePort needs on this node.
func desiredFrontends(sp *state.ServicePort, nodeAddrs []netip.Addr) []feSpec {
	var out []feSpec
	add := func(a netip.Addr, port int32, kind feKind) {
		if !a.IsValid() || port <= 0 || port > 65535 {
			return
		}
		out = append(out, feSpec{key: feKey{proto: sp.Protocol, addr: netip.AddrPortFrom(a.Unmap(), uint16(port))}, kind: kind})
	}
	for _, a := range sp.ClusterIPs {
		add(a, sp.Port, kindClusterIP)
	}
	for _, a := range sp.ExternalIPs {
		add(a, sp.Port, kindExternalIP)
	}
	for _, a := range sp.LoadBalancerIPs {
		add(a, sp.Port, kindLoadBalancer)
	}
	if sp.NodePort != 0 {
		for _, a := range nodeAddrs {
			add(a, sp.NodePort, kindNodePort)
		}
	}
	// A Service may name one address twice (say as clusterIP and externalIP): the
	// first role wins, as one socket can serve only one.
	seen := map[feKey]bool{}
	return slices.DeleteFunc(out, func(s feSpec) bool {
		dup := seen[s.key]
		seen[s.key] = true
		return dup
	})
}

// endpointsFor picks, from state's categorisation, the endpoints a frontend kind
// sends to: Local ones when the matching traffic policy is Local.
func endpointsFor(sp *state.ServicePort, kind feKind, c state.Categorized) []state.Endpoint {
	if kind == kindClusterIP {
		if sp.InternalPolicyLocal {
			return c.Local
		}
		return c.Cluster
	}
	if sp.ExternalPolicyLocal {
		return c.Local
	}
	return c.Cluster
}

// schedulerFor returns the algorithm a ServicePort asks for, or the node default.
func (p *Proxier) schedulerFor(sp *state.ServicePort) (string, []string) {
	if sp.Scheduler != "" {
		return sp.Scheduler, sp.SchedulerFlags
	}
	return p.defaultSched, nil
}

// buildConfig makes the frontend's next config from the current one, keeping the
// scheduler (and so its connection counters), the affinity table and the backend
// counters of endpoints that stay. It returns nil when nothing changed. An error
// (a scheduler lb cannot build) still comes with a usable config on the default.
func (p *Proxier) buildConfig(fe *frontend, svc *service, eps []state.Endpoint) (*feConfig, error) {
	sp := svc.sp
	var ranges []netip.Prefix
	if fe.kind == kindLoadBalancer {
		ranges = sp.LoadBalancerSourceRanges
	}
	want, flags := p.schedulerFor(sp)
	list := make([]lb.Backend, 0, len(eps))
	for _, e := range eps {
		list = append(list, lb.Backend{Addr: e.AddrPort(), Weight: e.Weight})
	}
	old := fe.cfg.Load()
	sameSched := old != nil && old.want == want && slices.Equal(old.wantFlags, flags)
	if sameSched && slices.Equal(old.list, list) && old.affinity.timeoutIs(sp.AffinityTimeout) &&
		slices.Equal(old.sourceRanges, ranges) {
		return nil, nil
	}
	next := &feConfig{want: want, wantFlags: flags, list: list, sourceRanges: ranges,
		backends: make(map[netip.AddrPort]*backend, len(list)), current: make(map[netip.AddrPort]int, len(list))}
	var err error
	if sameSched {
		next.sched, next.flags, next.updateAfterStore = old.sched, old.flags, true
	} else {
		next.sched, next.flags, err = p.newScheduler(svc.name, want, flags)
		if next.sched == nil {
			return nil, err
		}
		next.sched.Update(list)
	}
	for i, b := range list {
		next.current[b.Addr] = b.Weight
		if old != nil && old.backends[b.Addr] != nil {
			next.backends[b.Addr] = old.backends[b.Addr]
			continue
		}
		local := eps[i].IsLocal || b.Addr.Addr().IsLoopback()
		next.backends[b.Addr] = &backend{addr: b.Addr, metric: svc.metrics[b.Addr], local: local}
	}
	if sameSched {
		for _, b := range old.list {
			if next.backends[b.Addr] == nil {
				next.backends[b.Addr] = old.backends[b.Addr]
			}
		}
	}
	if sp.AffinityTimeout > 0 {
		if old != nil && old.affinity.timeoutIs(sp.AffinityTimeout) {
			next.affinity = old.affinity
		} else {
			next.affinity = newAffinity(sp.AffinityTimeout)
		}
	}
	return next, err
}

// newScheduler builds the named algorithm, falling back to the node default (which
// New validated) with an error naming the Service when lb cannot build it.
func (p *Proxier) newScheduler(n state.ServicePortName, name string, flags []string) (lb.Scheduler, []string, error) {
	s, err := lb.New(name, lb.Options{Flags: flags})
	if err == nil {
		return s, flags, nil
	}
	def, err2 := lb.New(p.defaultSched, lb.Options{})
	if err2 != nil {
		return nil, nil, fmt.Errorf("service %s: default scheduler %q: %v", n, p.defaultSched, err2)
	}
	return def, nil, fmt.Errorf("service %s: scheduler %q: %v; using the node default %q", n, name, err, p.defaultSched)
}
