package userspace

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
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

	// tcp or udp is the socket while the frontend listens (socket.go). These
	// and listening and closed change only under Proxier.mu.
	tcp *net.TCPListener
	udp *udpFrontend
	// watch is tcp's entry in the accept poller (acceptpoll_linux.go), nil
	// while an accept goroutine of its own serves it.
	watch *acceptWatch
	// listening is true while the frontend has its socket (or, in tests that
	// replace Proxier.listen, would have).
	listening bool
	// closed is set when the frontend stops for good.
	closed bool
	cfg    atomic.Pointer[feConfig]
	// open counts the relays (TCP connections, UDP flows) still running.
	open atomic.Int64
}

// feConfig is what a frontend needs to place a new connection. Sync swaps in a new
// one; relays keep the one they started with.
type feConfig struct {
	// set receives the frontend's connections: the Cluster endpoints, or the
	// Local ones when the frontend's traffic policy is Local.
	set *backendSet
	// inCluster, set only on external frontends (externalIP, load-balancer IP,
	// NodePort) of a Service with externalTrafficPolicy Local, holds the Cluster
	// endpoints. Clients in the cluster (a source in clusterCIDR, or one of the
	// node's own addresses) go there instead of to set, as kube-proxy
	// short-circuits them: they should not lose the Service because this node has
	// no local endpoint.
	inCluster *backendSet
	// hasAny is true when the Service has a usable endpoint anywhere. A client
	// left without an endpoint is then dropped (the relay closes without
	// answering); without any, the listener itself is closed so that clients are
	// refused, as kube-proxy's REJECT does.
	hasAny bool
	// sourceRanges restricts load-balancer frontends to the Service's
	// loadBalancerSourceRanges; nil allows every client.
	sourceRanges []netip.Prefix
}

// sets returns the config's backend sets, the primary first.
func (c *feConfig) sets() [2]*backendSet { return [2]*backendSet{c.set, c.inCluster} }

// listens reports whether the frontend should have a socket: while the Service
// has an endpoint anywhere, or one this frontend may send to.
func (c *feConfig) listens() bool {
	return c.hasAny || !c.set.empty() || !c.inCluster.empty()
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
	name state.ServicePortName
	sp   *state.ServicePort
	// frontends are few (one per address of the port): a slice takes a tenth
	// of a map's memory and is searched as fast.
	frontends []*frontend
	// metrics holds the per-endpoint metric series of this ServicePort, sorted
	// by address (a slice: a map took 330 bytes for 3 endpoints).
	metrics []*backendMetric
}

// frontend returns the service's frontend for k, or nil.
func (s *service) frontend(k feKey) *frontend {
	for _, fe := range s.frontends {
		if fe.key == k {
			return fe
		}
	}
	return nil
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
// sends to: Local ones when the matching traffic policy is Local. inCluster is
// the set for in-cluster clients when it differs by client (see
// feConfig.inCluster), and nil otherwise.
func endpointsFor(sp *state.ServicePort, kind feKind, c state.Categorized) (eps []state.Endpoint, inCluster []state.Endpoint, split bool) {
	if kind == kindClusterIP {
		if sp.InternalPolicyLocal {
			return c.Local, nil, false
		}
		return c.Cluster, nil, false
	}
	if sp.ExternalPolicyLocal {
		return c.Local, c.Cluster, true
	}
	return c.Cluster, nil, false
}

// schedulerFor returns the algorithm a ServicePort asks for, or the node default.
func (p *Proxier) schedulerFor(sp *state.ServicePort) (string, []string) {
	if sp.Scheduler != "" {
		return sp.Scheduler, sp.SchedulerFlags
	}
	return p.defaultSched, nil
}

// feWant is what a frontend's config should become.
type feWant struct {
	eps, inCluster []state.Endpoint
	// split: the frontend has an inCluster set.
	split  bool
	hasAny bool
}

// buildConfig makes the frontend's next config from the current one, keeping each
// set's scheduler (and so its connection counters), affinity table and backend
// counters of endpoints that stay. It returns nil when nothing changed. An error
// (a scheduler lb cannot build) still comes with a usable config on the default.
func (p *Proxier) buildConfig(fe *frontend, svc *service, w feWant) (*feConfig, error) {
	sp := svc.sp
	var ranges []netip.Prefix
	if fe.kind == kindLoadBalancer {
		ranges = sp.LoadBalancerSourceRanges
	}
	sched, flags := p.schedulerFor(sp)
	old := fe.cfg.Load()
	var oldSet, oldIn *backendSet
	if old != nil {
		oldSet, oldIn = old.set, old.inCluster
	}
	set, err := p.buildSet(svc, oldSet, setWant{sched: sched, flags: flags, eps: w.eps, affinityT: sp.AffinityTimeout})
	if set == nil {
		return nil, err
	}
	var in *backendSet
	if w.split {
		var err2 error
		if in, err2 = p.buildSet(svc, oldIn, setWant{sched: sched, flags: flags, eps: w.inCluster, affinityT: sp.AffinityTimeout}); in == nil {
			return nil, err2
		}
	}
	if old != nil && set == oldSet && in == oldIn && old.hasAny == w.hasAny && slices.Equal(old.sourceRanges, ranges) {
		return nil, nil
	}
	return &feConfig{set: set, inCluster: in, hasAny: w.hasAny, sourceRanges: ranges}, err
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
