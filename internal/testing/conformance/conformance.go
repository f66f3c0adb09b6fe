// Package conformance is the cross-mode conformance table: Service scenarios, each
// with the outcome a connection must see from the three places that matter (a pod
// behind the node, the node itself, an external host reaching the node): the
// endpoints reached and the client address each sees, or refused, or dropped. The same
// table runs against every mode twice: on the real kernel with real traffic
// (test/e2e, as root) and on each mode's stateful kernel fakes, evaluated with
// internal/trace (every `go test`; see RunFake).
package conformance

// Where a probe starts.
type Where int

// The three places.
const (
	FromPod Where = iota
	FromNode
	FromExternal
)

func (w Where) String() string { return [...]string{"pod", "node", "external"}[w] }

// Backends is the number of backends every scenario may use: 0 and 1 run on this
// node (for the policies that need local endpoints), 2 to 4 elsewhere.
const Backends = 5

// Service is one test Service with one port. Endpoints are backend indexes; nil
// means the Service has no EndpointSlice, empty an EndpointSlice without
// endpoints.
type Service struct {
	Name      string
	ClusterIP string
	Port      int
	UDP       bool
	NodePort  int
	// ExternalIP is added to spec.externalIPs.
	ExternalIP string
	// LoadBalancerIP makes it a LoadBalancer Service with this ingress IP;
	// SourceRangeExternal limits it to the external client's address.
	LoadBalancerIP      string
	SourceRangeExternal bool
	// HealthCheckNodePort makes it a LoadBalancer Service with
	// externalTrafficPolicy Local.
	HealthCheckNodePort int
	InternalLocal       bool
	Affinity            bool
	// Terminating marks every endpoint serving and terminating, not ready.
	Terminating bool
	Endpoints   []int
	// Local are the endpoints on this node.
	Local []int
}

// Outcome is what a connection attempt must see: Reach names the backends that
// must all answer, and no other, each seeing the client address Seen; Refused is
// rejected at once (ECONNREFUSED); Dropped is no answer at all.
type Outcome struct {
	Reach            []int
	Seen             Seen
	Refused, Dropped bool
}

// Seen is the client address an endpoint sees.
type Seen int

const (
	// SeenUnset is for outcomes that reach no endpoint.
	SeenUnset Seen = iota
	// SeenClient is the client's own address: not source-NATed. For the node
	// itself, the address it connected from.
	SeenClient
	// SeenNode is the node's address towards the endpoint: the connection was
	// masqueraded (or relayed from the node, in userspace mode).
	SeenNode
)

func (s Seen) String() string {
	return [...]string{"unset", "the client's own address", "the node's address (masqueraded)"}[s]
}

// ModeSeen overrides the table's Seen for every probe of a mode, where the mode
// differs from kube-proxy by design (docs/compatibility.md, "client address
// seen"): userspace relays every connection from the node, so every endpoint
// sees the node's address, as kube-proxy's old userspace mode did.
var ModeSeen = map[string]Seen{"userspace": SeenNode}

// WantSeen is the client address the probe's endpoints must see in mode.
func (p Probe) WantSeen(mode string) Seen {
	want := p.WantIn(mode)
	if s, ok := ModeSeen[mode]; ok && want.Seen != SeenUnset {
		return s
	}
	return want.Seen
}

// Probe is one connection attempt. "NODE" in Addr stands for the node's address
// as the client sees it.
type Probe struct {
	From Where
	Addr string
	UDP  bool
	Want Outcome
	// ModeWant is the outcome in a mode that differs from kube-proxy here by
	// design (docs/compatibility.md says why), replacing Want there.
	ModeWant map[string]Outcome
}

// WantIn is the outcome the probe must see in mode.
func (p Probe) WantIn(mode string) Outcome {
	if o, ok := p.ModeWant[mode]; ok {
		return o
	}
	return p.Want
}

// Scenario is one row of the table.
type Scenario struct {
	Name     string
	Services []Service
	Probes   []Probe
}

var reachAll = []int{2, 3, 4}

// Where kube-proxy 1.37 (iptables, nftables and ipvs alike, with clusterCIDR
// set and masqueradeAll off) masquerades, and so what each probe's endpoint
// sees:
//   - ClusterIP: traffic from outside clusterCIDR (the node, a routed external
//     host) is masqueraded; pods keep their address. Under iTP Local too.
//   - NodePort, externalIPs, LoadBalancer IPs with eTP Cluster: every client is
//     masqueraded, pods included (the external chain masquerades first).
//   - eTP Local: outside clients keep their address; pods short-circuited to the
//     cluster-wide endpoints keep theirs; the node's own traffic is masqueraded.
var (
	// clusterIP: pods unchanged, the node and the external host masqueraded.
	clusterIP = [3]Seen{SeenClient, SeenNode, SeenNode}
	// external: an external destination under eTP Cluster, masqueraded from
	// everywhere.
	external = [3]Seen{SeenNode, SeenNode, SeenNode}
)

// Scenarios is the table. Every Service address is distinct, so all scenarios can
// be applied to one node at once.
func Scenarios() []Scenario {
	return []Scenario{{
		Name: "ClusterIP with two ports",
		Services: []Service{
			{Name: "multi-http", ClusterIP: "10.96.1.1", Port: 80, Endpoints: reachAll},
			{Name: "multi-dns", ClusterIP: "10.96.1.1", Port: 53, UDP: true, Endpoints: reachAll},
		},
		Probes: append(everywhere("10.96.1.1:80", false, Outcome{Reach: reachAll}, clusterIP),
			everywhere("10.96.1.1:53", true, Outcome{Reach: reachAll}, clusterIP)...),
	}, {
		Name:     "NodePort",
		Services: []Service{{Name: "np", ClusterIP: "10.96.1.2", Port: 80, NodePort: 30102, Endpoints: reachAll}},
		Probes:   everywhere("NODE:30102", false, Outcome{Reach: reachAll}, external),
	}, {
		Name:     "externalIPs",
		Services: []Service{{Name: "ext", ClusterIP: "10.96.1.3", Port: 80, ExternalIP: "192.0.2.103", Endpoints: reachAll}},
		Probes:   everywhere("192.0.2.103:80", false, Outcome{Reach: reachAll}, external),
	}, {
		Name: "LoadBalancer with loadBalancerSourceRanges",
		Services: []Service{{Name: "lbsr", ClusterIP: "10.96.1.4", Port: 80, NodePort: 30104, LoadBalancerIP: "203.0.113.104",
			SourceRangeExternal: true, Endpoints: reachAll}},
		Probes: []Probe{
			{From: FromExternal, Addr: "203.0.113.104:80", Want: Outcome{Reach: reachAll, Seen: SeenNode}},
			{From: FromPod, Addr: "10.96.1.4:80", Want: Outcome{Reach: reachAll, Seen: SeenClient}},
		},
	}, {
		Name: "externalTrafficPolicy Local with a local endpoint",
		Services: []Service{{Name: "etp", ClusterIP: "10.96.1.5", Port: 80, NodePort: 30105, HealthCheckNodePort: 32105,
			Local: []int{0}, Endpoints: []int{0, 2}}},
		Probes: []Probe{
			// The point of eTP Local: the endpoint sees the outside client.
			{From: FromExternal, Addr: "NODE:30105", Want: Outcome{Reach: []int{0}, Seen: SeenClient}},
			{From: FromPod, Addr: "10.96.1.5:80", Want: Outcome{Reach: []int{0, 2}, Seen: SeenClient}},
		},
	}, {
		Name: "externalTrafficPolicy Local without a local endpoint",
		Services: []Service{{Name: "etp-none", ClusterIP: "10.96.1.6", Port: 80, NodePort: 30106, HealthCheckNodePort: 32106,
			Endpoints: reachAll}},
		Probes: []Probe{
			{From: FromExternal, Addr: "NODE:30106", Want: Outcome{Dropped: true}},
			{From: FromPod, Addr: "10.96.1.6:80", Want: Outcome{Reach: reachAll, Seen: SeenClient}},
			// In-cluster clients of the external address short-circuit to the
			// cluster-wide endpoints, as in kube-proxy (issue 12, item 3): pods
			// with their own address, the node masqueraded.
			{From: FromPod, Addr: "NODE:30106", Want: Outcome{Reach: reachAll, Seen: SeenClient}},
			{From: FromNode, Addr: "NODE:30106", Want: Outcome{Reach: reachAll, Seen: SeenNode}},
		},
	}, {
		Name: "internalTrafficPolicy Local",
		Services: []Service{
			{Name: "itp", ClusterIP: "10.96.1.7", Port: 80, InternalLocal: true, Local: []int{0, 1}, Endpoints: []int{0, 1, 2, 3, 4}},
			{Name: "itp-none", ClusterIP: "10.96.1.8", Port: 80, InternalLocal: true, Endpoints: reachAll},
		},
		Probes: []Probe{
			{From: FromPod, Addr: "10.96.1.7:80", Want: Outcome{Reach: []int{0, 1}, Seen: SeenClient}},
			// Off-cluster traffic to the ClusterIP is masqueraded under iTP
			// Local too (issue 12, item 8).
			{From: FromNode, Addr: "10.96.1.7:80", Want: Outcome{Reach: []int{0, 1}, Seen: SeenNode}},
			// Socket LB fails connect() at once: a sock_addr program can
			// refuse or let the packet go, not make the client wait.
			{From: FromPod, Addr: "10.96.1.8:80", Want: Outcome{Dropped: true},
				ModeWant: map[string]Outcome{"ebpf": {Refused: true}}},
		},
	}, {
		Name:     "only terminating endpoints",
		Services: []Service{{Name: "term", ClusterIP: "10.96.1.9", Port: 80, Terminating: true, Endpoints: reachAll}},
		Probes:   everywhere("10.96.1.9:80", false, Outcome{Reach: reachAll}, clusterIP),
	}, {
		Name:     "no endpoints",
		Services: []Service{{Name: "none", ClusterIP: "10.96.1.10", Port: 80, NodePort: 30110, Endpoints: []int{}}},
		Probes: append(everywhere("10.96.1.10:80", false, Outcome{Refused: true}, [3]Seen{}),
			Probe{From: FromExternal, Addr: "NODE:30110", Want: Outcome{Refused: true}}),
	}}
}

// MasqueradeAllScenarios is the table for a node whose configuration sets
// masqueradeAll (iptables.masqueradeAll, nftables.masqueradeAll, --masquerade-all;
// the ipvs mode reads iptables.masqueradeAll): kube-proxy then marks every packet
// to a ClusterIP for masquerade, whatever its source, so every endpoint sees the
// node's address from pods too (iTP Local included: the mark is in the chain
// ClusterIP traffic uses). Nothing else changes: the external addresses of an eTP
// Local Service keep outside clients' addresses. masqueradeAll is node-wide, so
// these Services run on a node of their own (addresses 10.96.2.x, distinct from
// Scenarios' anyway).
func MasqueradeAllScenarios() []Scenario {
	all := [3]Seen{SeenNode, SeenNode, SeenNode}
	return []Scenario{{
		Name: "masqueradeAll: ClusterIP",
		Services: []Service{
			{Name: "masq-http", ClusterIP: "10.96.2.1", Port: 80, Endpoints: reachAll},
			{Name: "masq-dns", ClusterIP: "10.96.2.1", Port: 53, UDP: true, Endpoints: reachAll},
		},
		Probes: append(everywhere("10.96.2.1:80", false, Outcome{Reach: reachAll}, all),
			Probe{From: FromPod, Addr: "10.96.2.1:53", UDP: true, Want: Outcome{Reach: reachAll, Seen: SeenNode}}),
	}, {
		Name: "masqueradeAll: internalTrafficPolicy Local",
		Services: []Service{{Name: "masq-itp", ClusterIP: "10.96.2.2", Port: 80, InternalLocal: true,
			Local: []int{0, 1}, Endpoints: []int{0, 1, 2}}},
		Probes: []Probe{{From: FromPod, Addr: "10.96.2.2:80", Want: Outcome{Reach: []int{0, 1}, Seen: SeenNode}}},
	}, {
		Name: "masqueradeAll: externalTrafficPolicy Local",
		Services: []Service{{Name: "masq-etp", ClusterIP: "10.96.2.3", Port: 80, NodePort: 30203, HealthCheckNodePort: 32203,
			Local: []int{0}, Endpoints: []int{0, 2}}},
		Probes: []Probe{
			// masqueradeAll is about ClusterIPs: the outside client of an eTP
			// Local NodePort keeps its address.
			{From: FromExternal, Addr: "NODE:30203", Want: Outcome{Reach: []int{0}, Seen: SeenClient}},
			{From: FromPod, Addr: "10.96.2.3:80", Want: Outcome{Reach: []int{0, 2}, Seen: SeenNode}},
		},
	}}
}

// everywhere makes the same probe from the pod, the node and the external host,
// the endpoints seeing seen[From].
func everywhere(addr string, udp bool, want Outcome, seen [3]Seen) []Probe {
	var out []Probe
	for _, w := range []Where{FromPod, FromNode, FromExternal} {
		o := want
		o.Seen = seen[w]
		out = append(out, Probe{From: w, Addr: addr, UDP: udp, Want: o})
	}
	return out
}
