// Package state is kproxy's model of the Services a node must proxy. Sources feed it
// Kubernetes objects; the Tracker turns them into immutable Snapshots of ServicePorts
// and their Endpoints, plus the set of ServicePorts that changed since the last sync.
// Endpoint categorisation (ready, terminating fallback, traffic policies, topology)
// is written here once for every dataplane.
package state

import (
	"fmt"
	"iter"
	"net/netip"
	"sort"
	"time"

	v1 "k8s.io/api/core/v1"
)

// Annotations kproxy reads. They are interfaces: keep the names.
const (
	// AnnotationScheduler on a Service names the load-balancing algorithm.
	AnnotationScheduler = "kproxy.dev/scheduler"
	// AnnotationSchedulerFlags on a Service lists the algorithm's flags, comma separated.
	AnnotationSchedulerFlags = "kproxy.dev/scheduler-flags"
	// AnnotationWeights on an EndpointSlice gives endpoint weights: "10.0.0.1=3,10.0.0.2=1".
	AnnotationWeights = "kproxy.dev/weights"
	// LabelServiceProxyName marks Services that another proxy handles.
	LabelServiceProxyName = "service.kubernetes.io/service-proxy-name"
	// DefaultAffinityTimeout is the ClientIP affinity timeout when a Service sets none.
	DefaultAffinityTimeout = 10800 * time.Second
)

// ServicePortName identifies one port of one Service.
type ServicePortName struct {
	Namespace string
	Name      string
	Port      string // the port's name; "" for a single unnamed port
	Protocol  v1.Protocol
}

// String renders the name the way kube-proxy logs it: "ns/name:port".
func (n ServicePortName) String() string {
	return fmt.Sprintf("%s/%s:%s", n.Namespace, n.Name, n.Port)
}

// ServicePort is one port of one Service with everything a dataplane needs to know.
// Values in a Snapshot are never modified.
type ServicePort struct {
	Name     ServicePortName
	Type     v1.ServiceType
	Protocol v1.Protocol
	// ClusterIPs holds one address per IP family.
	ClusterIPs []netip.Addr
	Port       int32
	// NodePort is 0 when the Service has none.
	NodePort                 int32
	ExternalIPs              []netip.Addr
	LoadBalancerIPs          []netip.Addr
	LoadBalancerSourceRanges []netip.Prefix
	// HealthCheckNodePort is set for LoadBalancer Services with externalTrafficPolicy Local.
	HealthCheckNodePort int32
	ExternalPolicyLocal bool
	InternalPolicyLocal bool
	// AffinityTimeout is non-zero when sessionAffinity is ClientIP.
	AffinityTimeout time.Duration
	// Scheduler and SchedulerFlags come from the kproxy.dev/scheduler annotations after
	// validation; "" means the node default of the dataplane.
	Scheduler      string
	SchedulerFlags []string
}

// ExternallyAccessible reports whether the port is reachable from outside the cluster
// network (NodePort, externalIPs or load-balancer IPs), which is where
// externalTrafficPolicy applies.
func (sp *ServicePort) ExternallyAccessible() bool {
	return sp.NodePort != 0 || len(sp.ExternalIPs) > 0 || len(sp.LoadBalancerIPs) > 0
}

// UsesClusterEndpoints reports whether the port needs its cluster-wide endpoints: when
// internal traffic is Cluster, or when it accepts external traffic at all, because even
// with externalTrafficPolicy Local, pods and the node itself reaching an external
// address are short-circuited to the cluster endpoints (as kube-proxy does).
func (sp *ServicePort) UsesClusterEndpoints() bool {
	return !sp.InternalPolicyLocal || sp.ExternallyAccessible()
}

// UsesLocalEndpoints reports whether any traffic to the port stays on this node.
func (sp *ServicePort) UsesLocalEndpoints() bool {
	return sp.InternalPolicyLocal || (sp.ExternallyAccessible() && sp.ExternalPolicyLocal)
}

// Endpoint is one backend of a ServicePort.
type Endpoint struct {
	IP          netip.Addr
	Port        int32
	Ready       bool
	Serving     bool
	Terminating bool
	// IsLocal is true when the endpoint runs on this node. (Next to the other
	// flags: the struct is 8 bytes smaller than with IsLocal after Zone.)
	IsLocal  bool
	NodeName string
	Zone     string
	// Hints are the EndpointSlice topology hints, nil when it has none (behind a
	// pointer: most endpoints have none, and two nil slices cost 48 bytes in
	// every endpoint).
	Hints *Hints
	// Weight comes from the kproxy.dev/weights annotation; 1 when unset, 0 drains.
	Weight int
}

// Hints are an endpoint's topology hints: the zones and nodes it is for.
type Hints struct {
	Zones, Nodes []string
}

// ZoneHints are the zones the endpoint is hinted for.
func (e *Endpoint) ZoneHints() []string {
	if e.Hints == nil {
		return nil
	}
	return e.Hints.Zones
}

// NodeHints are the nodes the endpoint is hinted for.
func (e *Endpoint) NodeHints() []string {
	if e.Hints == nil {
		return nil
	}
	return e.Hints.Nodes
}

// AddrPort is the endpoint's address and port.
func (e Endpoint) AddrPort() netip.AddrPort {
	return netip.AddrPortFrom(e.IP, uint16(e.Port))
}

// String is "ip:port" ("[ip]:port" for IPv6).
func (e Endpoint) String() string { return e.AddrPort().String() }

// NodeInfo is what kproxy knows about the node it runs on.
type NodeInfo struct {
	Name      string
	Addresses []netip.Addr
	Labels    map[string]string
	// Zone is the node's topology.kubernetes.io/zone label.
	Zone string
}

// Snapshot is an immutable view of every ServicePort and its endpoints. Read it
// through its methods (Service, EndpointsOf, Port, Len, All, SortedNames): a Tracker's
// snapshots keep their ports in a persistent index shared with the snapshots
// before and after them, and leave ServiceMap and EndpointMap nil.
type Snapshot struct {
	// ServiceMap and EndpointMap hold the ports of a snapshot built by hand
	// (tests, fakes), which the methods read when the snapshot has no index. A
	// Tracker's snapshots leave them nil: read snapshots through the methods.
	ServiceMap  map[ServicePortName]*ServicePort
	EndpointMap map[ServicePortName][]Endpoint
	Node        NodeInfo
	// ServiceCIDRs are the prefixes of every networking.k8s.io/v1 ServiceCIDR
	// (spec.cidrs), masked, deduplicated and sorted; nil when none exists. Traffic
	// to an address inside them that is no ClusterIP is dropped (nftables mode).
	ServiceCIDRs []netip.Prefix
	// Generation increases with every snapshot the Tracker produces.
	Generation uint64

	// idx holds the ports of a Tracker's snapshot (index.go); nil when built by hand.
	idx *portIndex
}

// Service returns the ServicePort named n, nil when there is none.
func (s *Snapshot) Service(n ServicePortName) *ServicePort {
	if s.idx == nil {
		return s.ServiceMap[n]
	}
	if e := s.idx.get(n); e != nil {
		return e.sp
	}
	return nil
}

// EndpointsOf returns the endpoints of the ServicePort named n, deduplicated and
// sorted by address and port.
func (s *Snapshot) EndpointsOf(n ServicePortName) []Endpoint {
	if s.idx == nil {
		return s.EndpointMap[n]
	}
	if e := s.idx.get(n); e != nil {
		return e.eps
	}
	return nil
}

// Port returns the ServicePort named n and its endpoints in one lookup; nil, nil
// when there is none.
func (s *Snapshot) Port(n ServicePortName) (*ServicePort, []Endpoint) {
	if s.idx == nil {
		return s.ServiceMap[n], s.EndpointMap[n]
	}
	if e := s.idx.get(n); e != nil {
		return e.sp, e.eps
	}
	return nil, nil
}

// Len is the number of ServicePorts.
func (s *Snapshot) Len() int {
	if s.idx == nil {
		return len(s.ServiceMap)
	}
	return s.idx.n
}

// All yields every ServicePort with its name, in no particular order.
func (s *Snapshot) All() iter.Seq2[ServicePortName, *ServicePort] {
	return func(yield func(ServicePortName, *ServicePort) bool) {
		if s.idx == nil {
			for n, sp := range s.ServiceMap {
				if !yield(n, sp) {
					return
				}
			}
			return
		}
		s.idx.root.each(func(e *portEntry) bool { return yield(e.name(), e.sp) })
	}
}

// SortedNames lists the ServicePorts in a stable order, for deterministic rendering.
func (s *Snapshot) SortedNames() []ServicePortName {
	out := make([]ServicePortName, 0, s.Len())
	for n := range s.All() {
		out = append(out, n)
	}
	SortNames(out)
	return out
}

// SortNames sorts ServicePortNames by namespace, name, port name and protocol.
func SortNames(names []ServicePortName) {
	sort.Slice(names, func(i, j int) bool { return lessName(names[i], names[j]) })
}

func lessName(a, b ServicePortName) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	if a.Port != b.Port {
		return a.Port < b.Port
	}
	return a.Protocol < b.Protocol
}

// ChangeSet says what changed between the previous snapshot and this one.
type ChangeSet struct {
	// Ports holds every ServicePort added, removed, or changed in its spec or endpoints.
	Ports map[ServicePortName]struct{}
	// ServiceEvents and EndpointEvents count the source events folded into this change.
	ServiceEvents  int
	EndpointEvents int
	// TriggerTimes are the endpoints.kubernetes.io/last-change-trigger-time values
	// of the changed EndpointSlices, for kubeproxy_network_programming_duration_seconds.
	TriggerTimes []time.Time
	// NodeChanged is true when this node's addresses or labels changed.
	NodeChanged bool
	// CIDRsChanged is true when the union of the ServiceCIDRs' prefixes changed.
	CIDRsChanged bool
}

// Changed reports whether the ServicePort is in the change set.
func (c ChangeSet) Changed(n ServicePortName) bool {
	_, ok := c.Ports[n]
	return ok
}

// Empty reports whether nothing changed.
func (c ChangeSet) Empty() bool { return len(c.Ports) == 0 && !c.NodeChanged && !c.CIDRsChanged }
