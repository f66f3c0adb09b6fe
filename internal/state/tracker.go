package state

import (
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// Handler receives objects from a source. Upserts carry the whole new object; deletes
// name it. The Tracker implements it; sources are tested against fakes of it.
type Handler interface {
	UpsertService(svc *v1.Service)
	DeleteService(namespace, name string)
	UpsertEndpointSlice(es *discovery.EndpointSlice)
	DeleteEndpointSlice(namespace, name string)
	UpsertNode(node *v1.Node)
	DeleteNode(name string)
}

// Options configure a Tracker.
type Options struct {
	// NodeName is this node; endpoints on it are local.
	NodeName string
	// ValidateScheduler checks a kproxy.dev/scheduler annotation; nil accepts any name.
	ValidateScheduler func(name string, flags []string) error
	// Reject is told about an object or field kproxy cannot use (for a log line and a
	// metric). object is "Service ns/name", "EndpointSlice ns/name" or
	// "ServiceCIDR name".
	Reject func(object string, err error)
	// OnChange is called, outside the Tracker's lock, after each event that changed
	// something, so that a runner can schedule a sync.
	OnChange func()
	// DisableExternalIPs drops spec.externalIPs from every ServicePort, so no mode
	// programs them: the AllowServiceExternalIPs gate off (see ExternalIPsAllowed).
	DisableExternalIPs bool
}

// TriggerTimeAnnotation is set by the endpoint controllers on EndpointSlices.
const TriggerTimeAnnotation = "endpoints.kubernetes.io/last-change-trigger-time"

// Tracker applies source events and produces Snapshots. Repeated updates to the
// same object collapse; an update that changes nothing a proxy uses is dropped.
type Tracker struct {
	opts Options

	mu       sync.Mutex
	services map[string]*Service
	slices   map[string]*Slice
	// slicesBySvc lists each Service's slice keys: a slice rather than a set, as
	// nearly every Service has one or a few (a map each was 4.5 MiB at 10,000).
	slicesBySvc map[string][]string
	node        *v1.Node
	dirty       map[string]struct{}
	nodeDirty   bool
	svcEvents   int
	epEvents    int
	triggers    []time.Time
	prev        *Snapshot
	// ports indexes prev by Service, so a rebuild need not scan every port: the
	// ServicePorts prev holds (a pointer each, not a 64-byte name).
	ports map[string][]*ServicePort
	// reported remembers the last problem reported per object, so that rebuilding a
	// Service (for an endpoint or node change) does not report the same version again.
	reported map[string]reportedProblem
	// cidrs holds each ServiceCIDR's prefixes by object name (servicecidr.go).
	cidrs      map[string][]netip.Prefix
	cidrsDirty bool
}

type reportedProblem struct {
	version any // the object pointer: a new version is a new pointer
	err     string
}

var _ Handler = (*Tracker)(nil)

// NewTracker returns an empty Tracker.
func NewTracker(o Options) *Tracker {
	return &Tracker{
		opts:        o,
		services:    map[string]*Service{},
		slices:      map[string]*Slice{},
		slicesBySvc: map[string][]string{},
		dirty:       map[string]struct{}{},
		ports:       map[string][]*ServicePort{},
		reported:    map[string]reportedProblem{},
		prev:        &Snapshot{Node: NodeInfo{Name: o.NodeName}, idx: &portIndex{}},
	}
}

func key(ns, name string) string { return ns + "/" + name }

// UpsertService records a new or updated Service.
func (t *Tracker) UpsertService(svc *v1.Service) {
	t.UpsertConvertedService(t.ConvertService(svc))
}

// UpsertConvertedService records a new or updated Service converted by
// ConvertService.
func (t *Tracker) UpsertConvertedService(svc *Service) {
	k := key(svc.Namespace, svc.Name)
	t.update(func() bool {
		if old := t.services[k]; old != nil && old.same(svc) {
			return false
		}
		for _, err := range []error{svc.err, svc.schedErr} {
			if err != nil {
				t.reject("Service "+k, svc, err)
			}
		}
		t.services[k] = svc
		t.dirty[k] = struct{}{}
		t.svcEvents++
		return true
	})
}

// DeleteService forgets a Service.
func (t *Tracker) DeleteService(namespace, name string) {
	k := key(namespace, name)
	t.update(func() bool {
		if _, ok := t.services[k]; !ok {
			return false
		}
		delete(t.services, k)
		delete(t.reported, "Service "+k)
		t.dirty[k] = struct{}{}
		t.svcEvents++
		return true
	})
}

// UpsertEndpointSlice records a new or updated EndpointSlice.
func (t *Tracker) UpsertEndpointSlice(es *discovery.EndpointSlice) {
	t.UpsertSlice(t.ConvertSlice(es))
}

// ConvertSlice converts an EndpointSlice as the Tracker keeps it (SliceConverter).
func (t *Tracker) ConvertSlice(es *discovery.EndpointSlice) *Slice {
	return ConvertSlice(es, t.opts.NodeName)
}

// UpsertSlice records a new or updated EndpointSlice converted by ConvertSlice.
func (t *Tracker) UpsertSlice(s *Slice) {
	k := key(s.Namespace, s.Name)
	t.update(func() bool {
		old := t.slices[k]
		if old != nil && old.same(s) {
			return false
		}
		if old != nil {
			t.unindexSlice(k, old)
		}
		if s.weightsErr != nil {
			t.reject("EndpointSlice "+k, s, s.weightsErr)
		}
		t.slices[k] = s
		svcKey := key(s.Namespace, s.Service)
		t.slicesBySvc[svcKey] = append(t.slicesBySvc[svcKey], k)
		t.dirty[svcKey] = struct{}{}
		t.epEvents++
		if ts, err := time.Parse(time.RFC3339Nano, s.trigger); err == nil {
			t.triggers = append(t.triggers, ts)
		}
		return true
	})
}

// DeleteEndpointSlice forgets an EndpointSlice.
func (t *Tracker) DeleteEndpointSlice(namespace, name string) {
	k := key(namespace, name)
	t.update(func() bool {
		old := t.slices[k]
		if old == nil {
			return false
		}
		t.unindexSlice(k, old)
		delete(t.slices, k)
		delete(t.reported, "EndpointSlice "+k)
		t.epEvents++
		return true
	})
}

func (t *Tracker) unindexSlice(k string, s *Slice) {
	svcKey := key(s.Namespace, s.Service)
	keys := t.slicesBySvc[svcKey]
	if i := slices.Index(keys, k); i >= 0 {
		keys[i] = keys[len(keys)-1]
		keys = keys[:len(keys)-1]
	}
	if len(keys) == 0 {
		delete(t.slicesBySvc, svcKey)
	} else {
		t.slicesBySvc[svcKey] = keys
	}
	t.dirty[svcKey] = struct{}{}
}

// UpsertNode records this node's object; other nodes are ignored.
func (t *Tracker) UpsertNode(node *v1.Node) {
	if t.opts.NodeName == "" || node.Name != t.opts.NodeName {
		return
	}
	t.update(func() bool {
		if t.node != nil && reflect.DeepEqual(nodeInfo(t.node), nodeInfo(node)) {
			return false
		}
		t.node = node
		t.nodeDirty = true
		return true
	})
}

// DeleteNode forgets this node's object.
func (t *Tracker) DeleteNode(name string) {
	if name != t.opts.NodeName {
		return
	}
	t.update(func() bool {
		if t.node == nil {
			return false
		}
		t.node = nil
		t.nodeDirty = true
		return true
	})
}

func (t *Tracker) update(apply func() bool) {
	t.mu.Lock()
	changed := apply()
	t.mu.Unlock()
	if changed && t.opts.OnChange != nil {
		t.opts.OnChange()
	}
}

// Pending returns the Service and EndpointSlice events not yet in a snapshot.
func (t *Tracker) Pending() (services, endpoints int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.svcEvents, t.epEvents
}

// Last returns the most recent snapshot without taking pending changes.
func (t *Tracker) Last() *Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.prev
}

// Snapshot folds pending events into a new immutable Snapshot and says what changed.
func (t *Tracker) Snapshot() (*Snapshot, ChangeSet) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := ChangeSet{
		Ports:          map[ServicePortName]struct{}{},
		ServiceEvents:  t.svcEvents,
		EndpointEvents: t.epEvents,
		TriggerTimes:   t.triggers,
	}
	// The new index shares every node with prev; the changed ports below copy
	// only their paths (index.go), so prev stays as its holders saw it.
	gen := t.prev.Generation + 1
	next := &Snapshot{
		Node:         t.prev.Node,
		ServiceCIDRs: t.prev.ServiceCIDRs,
		Generation:   gen,
		idx:          t.prev.idx.derive(gen),
	}
	cs.CIDRsChanged = t.foldCIDRs(next)
	if t.nodeDirty {
		next.Node = nodeInfo(t.node)
		next.Node.Name = t.opts.NodeName
		cs.NodeChanged = true
		for k := range t.services {
			t.dirty[k] = struct{}{}
		}
	}
	for svcKey := range t.dirty {
		t.rebuildService(svcKey, next, cs.Ports)
	}
	t.dirty = map[string]struct{}{}
	t.nodeDirty = false
	t.svcEvents, t.epEvents, t.triggers = 0, 0, nil
	t.prev = next
	return next, cs
}

// rebuildService recomputes one Service's ports and endpoints in next and records
// the ServicePorts whose spec or endpoints differ from before.
func (t *Tracker) rebuildService(svcKey string, next *Snapshot, changed map[ServicePortName]struct{}) {
	ports, ok := t.currentPorts(svcKey)
	if !ok {
		return // conversion failed: the last good ports keep serving
	}
	oldNames := map[ServicePortName]bool{}
	for _, sp := range t.ports[svcKey] {
		oldNames[sp.Name] = true
	}
	kept := make([]*ServicePort, 0, len(ports))
	byPort := t.endpointsFor(svcKey)
	for _, sp := range ports {
		n := sp.Name
		delete(oldNames, n)
		eps := byPort[n.Port]
		// An unchanged port keeps its entry (and the index its nodes).
		if old := next.idx.get(n); old != nil && reflect.DeepEqual(old.sp, sp) && reflect.DeepEqual(old.eps, eps) {
			sp = old.sp
		} else {
			changed[n] = struct{}{}
			next.idx.put(&portEntry{sp: sp, eps: eps})
		}
		kept = append(kept, sp)
	}
	if len(kept) > 0 {
		t.ports[svcKey] = kept
	} else {
		delete(t.ports, svcKey)
	}
	for n := range oldNames {
		next.idx.remove(n)
		changed[n] = struct{}{}
	}
}

// currentPorts is the ports of the Service now known under svcKey; false means
// keep the old (the Service did not convert).
func (t *Tracker) currentPorts(svcKey string) ([]*ServicePort, bool) {
	svc := t.services[svcKey]
	if svc == nil {
		return nil, true
	}
	return svc.ports, svc.err == nil
}

// endpointsFor merges every slice of a Service into deduplicated, sorted endpoints
// per port name. Of endpoints with the same address and port (one pod in two
// slices, while the controller moves it), the first ready one wins, else the last.
// A port that only one slice has gets that slice's list itself (already sorted and
// deduplicated, and never modified): the snapshot and the slice share it.
func (t *Tracker) endpointsFor(svcKey string) map[string][]Endpoint {
	keys := t.slicesBySvc[svcKey]
	out := map[string][]Endpoint{}
	var merged map[string]bool // ports whose list out owns (more than one slice)
	for _, sk := range keys {
		for _, p := range t.slices[sk].ports {
			prev, seen := out[p.name]
			switch {
			case !seen:
				out[p.name] = p.eps
			case merged[p.name]:
				out[p.name] = append(prev, p.eps...)
			default:
				if merged == nil {
					merged = map[string]bool{}
				}
				merged[p.name] = true
				out[p.name] = append(append(make([]Endpoint, 0, len(prev)+len(p.eps)), prev...), p.eps...)
			}
		}
	}
	for port := range merged {
		out[port] = dedupEndpoints(out[port])
	}
	return out
}

// dedupEndpoints sorts list by address and port and keeps one endpoint of each:
// the first ready one in list's order, else the last. The result is sized exactly:
// the Snapshot keeps it.
func dedupEndpoints(list []Endpoint) []Endpoint {
	slices.SortStableFunc(list, func(a, b Endpoint) int { return a.AddrPort().Compare(b.AddrPort()) })
	out := list[:0]
	for i := 0; i < len(list); {
		j, pick := i+1, i
		for ; j < len(list) && list[j].AddrPort() == list[i].AddrPort(); j++ {
			if !list[pick].Ready {
				pick = j
			}
		}
		out = append(out, list[pick])
		i = j
	}
	if cap(out) > len(out) {
		return slices.Clone(out)
	}
	return out
}

// reject reports a problem with one version of an object, once.
func (t *Tracker) reject(object string, version any, err error) {
	p := reportedProblem{version: version, err: err.Error()}
	if t.reported[object] == p {
		return
	}
	t.reported[object] = p
	if t.opts.Reject != nil {
		t.opts.Reject(object, err)
	}
}

func nodeInfo(n *v1.Node) NodeInfo {
	if n == nil {
		return NodeInfo{}
	}
	info := NodeInfo{Name: n.Name, Labels: n.Labels, Zone: n.Labels[v1.LabelTopologyZone]}
	for _, a := range n.Status.Addresses {
		if a.Type != v1.NodeInternalIP && a.Type != v1.NodeExternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			info.Addresses = append(info.Addresses, ip)
		}
	}
	return info
}
