// Package bench measures what a proxy mode costs on this kernel: a synthetic
// workload of N ClusterIP Services, the sync timings of one mode (`kproxy bench
// sync`) and the side-by-side comparison of every mode (`kproxy bench compare`).
// Every kernel measurement runs inside private network namespaces the package
// creates and deletes itself.
package bench

import (
	"fmt"
	"net/netip"
	"strconv"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kproxy.dev/kproxy/internal/state"
)

// Workload addresses: Services are 10.96.x.y:80/TCP, endpoints 10.a.b.c:8080 in
// 10.128.0.0/11 (room for 100,000 Services x 5 endpoints and more; the earlier
// 10.244.0.0/14 held only 262,142), the shape of kernel-baseline.md.
const (
	Namespace    = "bench"
	ServicePort  = 80
	EndpointPort = 8080
	// MaxServices keeps ClusterIPs inside 10.96.0.0/12 and endpoints in 10.128.0.0/11.
	MaxServices  = 1<<20 - 2
	maxEndpoints = 1<<21 - 2
	// SliceSize is the most endpoints one generated EndpointSlice holds (the
	// endpoint slice controller's default maximum); larger Services get several.
	SliceSize = 100
)

var (
	serviceBase  = netip.MustParseAddr("10.96.0.0")
	endpointBase = netip.MustParseAddr("10.128.0.0")
	// ServiceCIDR and EndpointCIDR cover every address the workload uses; the
	// namespace setup routes them.
	ServiceCIDR  = netip.MustParsePrefix("10.96.0.0/12")
	EndpointCIDR = netip.MustParsePrefix("10.128.0.0/11")
)

// WorkloadOptions size a workload.
type WorkloadOptions struct {
	Services  int
	Endpoints int
	// NodeName is the node the Tracker runs for; endpoints are on other nodes.
	NodeName string
}

// Workload is a Tracker loaded with N Services, so that snapshots and change sets
// are exactly what the daemon would hand a dataplane.
type Workload struct {
	opts    WorkloadOptions
	tracker *state.Tracker
	// next is the index of the next Service AddChange creates.
	next int
	// moved counts endpoint changes, so each one picks a fresh address.
	moved int
	// endpoints remembers the current endpoint indexes of each Service.
	endpoints map[int][]int
	nextEP    int
}

// NewWorkload builds the Tracker and loads every Service and EndpointSlice.
func NewWorkload(o WorkloadOptions) (*Workload, error) {
	if o.Services < 1 || o.Services > MaxServices {
		return nil, fmt.Errorf("services: %d out of range 1..%d", o.Services, MaxServices)
	}
	if o.Endpoints < 1 || (o.Services+16)*o.Endpoints > maxEndpoints {
		return nil, fmt.Errorf("endpoints: %d per Service does not fit in %s for %d Services", o.Endpoints, EndpointCIDR, o.Services)
	}
	if o.NodeName == "" {
		o.NodeName = "bench-node"
	}
	w := &Workload{
		opts:      o,
		tracker:   state.NewTracker(state.Options{NodeName: o.NodeName}),
		endpoints: map[int][]int{},
	}
	for i := 0; i < o.Services; i++ {
		w.addService()
	}
	return w, nil
}

// Initial returns the first snapshot (every Service) and its change set, what a
// cold full sync receives.
func (w *Workload) Initial() (*state.Snapshot, state.ChangeSet) { return w.tracker.Snapshot() }

// Change adds one new Service and moves one endpoint of an existing Service to a
// new address: the "one Service changed" step of the benchmark.
func (w *Workload) Change() (*state.Snapshot, state.ChangeSet) {
	w.addService()
	w.moveEndpoint(w.moved % w.opts.Services)
	w.moved++
	return w.tracker.Snapshot()
}

// MoveEndpoint moves one endpoint of one existing Service to a new address and
// changes nothing else: the "one endpoint changed" step. Successive calls walk
// the Services round robin.
func (w *Workload) MoveEndpoint() (*state.Snapshot, state.ChangeSet) {
	w.moveEndpoint(w.moved % w.opts.Services)
	w.moved++
	return w.tracker.Snapshot()
}

// ServiceName is the name of Service i; zero padding keeps name order and index
// order the same, so Service 0 sorts first and Service N-1 last.
func ServiceName(i int) string { return fmt.Sprintf("svc-%06d", i) }

// PortName identifies the single port of Service i.
func PortName(i int) state.ServicePortName {
	return state.ServicePortName{Namespace: Namespace, Name: ServiceName(i), Port: "http", Protocol: v1.ProtocolTCP}
}

// ServiceAddr is the ClusterIP:port of Service i.
func ServiceAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(offset(serviceBase, i+1), ServicePort)
}

// EndpointAddr is the address of endpoint index k (global across Services).
func EndpointAddr(k int) netip.Addr { return offset(endpointBase, k+1) }

func offset(base netip.Addr, n int) netip.Addr {
	b := base.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (w *Workload) addService() {
	i := w.next
	w.next++
	eps := make([]int, w.opts.Endpoints)
	for j := range eps {
		eps[j] = w.nextEP
		w.nextEP++
	}
	w.endpoints[i] = eps
	w.tracker.UpsertService(makeService(i))
	for _, es := range makeSlices(i, eps) {
		w.tracker.UpsertEndpointSlice(es)
	}
}

func (w *Workload) moveEndpoint(i int) {
	eps := append([]int(nil), w.endpoints[i]...)
	eps[0] = w.nextEP
	w.nextEP++
	w.endpoints[i] = eps
	// Endpoint 0 is in the first slice: only that one changes.
	w.tracker.UpsertEndpointSlice(makeSlices(i, eps[:min(len(eps), SliceSize)])[0])
}

func makeService(i int) *v1.Service {
	ip := ServiceAddr(i).Addr().String()
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: ServiceName(i)},
		Spec: v1.ServiceSpec{
			Type:       v1.ServiceTypeClusterIP,
			ClusterIP:  ip,
			ClusterIPs: []string{ip},
			Ports: []v1.ServicePort{{
				Name: "http", Protocol: v1.ProtocolTCP, Port: ServicePort,
			}},
		},
	}
}

// makeSlices spreads the endpoints of Service i over slices of at most SliceSize:
// ServiceName(i)-abc, then -abc-1, -abc-2, ...
func makeSlices(i int, eps []int) []*discovery.EndpointSlice {
	out := make([]*discovery.EndpointSlice, 0, (len(eps)+SliceSize-1)/SliceSize)
	for s := 0; s < len(eps); s += SliceSize {
		name := ServiceName(i) + "-abc"
		if s > 0 {
			name += "-" + strconv.Itoa(s/SliceSize)
		}
		out = append(out, makeSlice(i, name, s, eps[s:min(len(eps), s+SliceSize)]))
	}
	return out
}

// makeSlice is one slice of Service i; first is the index of its first endpoint
// in the Service (endpoint j runs on node-j, as before slices were split).
func makeSlice(i int, sliceName string, first int, eps []int) *discovery.EndpointSlice {
	name, port, proto := "http", int32(EndpointPort), v1.ProtocolTCP
	yes := true
	es := &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: Namespace,
			Name:      sliceName,
			Labels:    map[string]string{discovery.LabelServiceName: ServiceName(i)},
		},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       []discovery.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
	}
	for j, k := range eps {
		node := "node-" + strconv.Itoa(first+j)
		es.Endpoints = append(es.Endpoints, discovery.Endpoint{
			Addresses:  []string{EndpointAddr(k).String()},
			Conditions: discovery.EndpointConditions{Ready: &yes, Serving: &yes},
			NodeName:   &node,
		})
	}
	return es
}
