package state

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// Proxyable reports whether kproxy handles the Service at all: not headless, not
// ExternalName, and not claimed by another proxy through the service-proxy-name label.
func Proxyable(svc *v1.Service) bool {
	if _, other := svc.Labels[LabelServiceProxyName]; other {
		return false
	}
	if svc.Spec.Type == v1.ServiceTypeExternalName {
		return false
	}
	ip := svc.Spec.ClusterIP
	return ip != "" && ip != v1.ClusterIPNone
}

// ServicePorts converts a Service into its ServicePorts. Invalid addresses are errors
// naming the field; the caller decides whether to drop the Service.
func ServicePorts(svc *v1.Service) ([]*ServicePort, error) {
	base, err := serviceCommon(svc)
	if err != nil {
		return nil, err
	}
	out := make([]*ServicePort, 0, len(svc.Spec.Ports))
	for i := range svc.Spec.Ports {
		p := svc.Spec.Ports[i]
		sp := *base
		sp.Name = ServicePortName{Namespace: svc.Namespace, Name: svc.Name, Port: p.Name, Protocol: protocolOf(p.Protocol)}
		sp.Protocol = sp.Name.Protocol
		sp.Port = p.Port
		sp.NodePort = p.NodePort
		out = append(out, &sp)
	}
	return out, nil
}

func protocolOf(p v1.Protocol) v1.Protocol {
	if p == "" {
		return v1.ProtocolTCP
	}
	return p
}

func serviceCommon(svc *v1.Service) (*ServicePort, error) {
	sp := &ServicePort{Type: svc.Spec.Type, HealthCheckNodePort: svc.Spec.HealthCheckNodePort}
	var err error
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 {
		ips = []string{svc.Spec.ClusterIP}
	}
	if sp.ClusterIPs, err = parseAddrs(ips, "spec.clusterIPs"); err != nil {
		return nil, err
	}
	if sp.ExternalIPs, err = parseAddrs(svc.Spec.ExternalIPs, "spec.externalIPs"); err != nil {
		return nil, err
	}
	for i, ing := range svc.Status.LoadBalancer.Ingress {
		// ipMode Proxy means the load balancer rewrites the destination to a node:
		// like kube-proxy, do not capture traffic to its IP (KEP-1860).
		if ing.IP == "" || (ing.IPMode != nil && *ing.IPMode != v1.LoadBalancerIPModeVIP) {
			continue
		}
		a, perr := netip.ParseAddr(ing.IP)
		if perr != nil {
			return nil, fmt.Errorf("status.loadBalancer.ingress[%d].ip: invalid address %q", i, ing.IP)
		}
		sp.LoadBalancerIPs = append(sp.LoadBalancerIPs, a)
	}
	for i, r := range svc.Spec.LoadBalancerSourceRanges {
		p, perr := netip.ParsePrefix(strings.TrimSpace(r))
		if perr != nil {
			return nil, fmt.Errorf("spec.loadBalancerSourceRanges[%d]: invalid CIDR %q", i, r)
		}
		sp.LoadBalancerSourceRanges = append(sp.LoadBalancerSourceRanges, p.Masked())
	}
	sp.ExternalPolicyLocal = svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal
	sp.InternalPolicyLocal = svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == v1.ServiceInternalTrafficPolicyLocal
	if svc.Spec.SessionAffinity == v1.ServiceAffinityClientIP {
		sp.AffinityTimeout = DefaultAffinityTimeout
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			sp.AffinityTimeout = time.Duration(*c.ClientIP.TimeoutSeconds) * time.Second
		}
	}
	return sp, nil
}

func parseAddrs(list []string, field string) ([]netip.Addr, error) {
	var out []netip.Addr
	for i, s := range list {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: invalid address %q", field, i, s)
		}
		out = append(out, a)
	}
	return out, nil
}

// SchedulerAnnotation reads the kproxy.dev/scheduler annotations of a Service.
func SchedulerAnnotation(svc *v1.Service) (name string, flags []string) {
	name = strings.TrimSpace(svc.Annotations[AnnotationScheduler])
	for _, f := range strings.Split(svc.Annotations[AnnotationSchedulerFlags], ",") {
		if f = strings.TrimSpace(f); f != "" {
			flags = append(flags, f)
		}
	}
	return name, flags
}

// ParseWeights parses the kproxy.dev/weights annotation: "ip=weight,ip=weight".
func ParseWeights(s string) (map[netip.Addr]int, error) {
	out := map[netip.Addr]int{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		ipStr, wStr, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("weight %q: want ip=weight", item)
		}
		ip, err := netip.ParseAddr(strings.TrimSpace(ipStr))
		if err != nil {
			return nil, fmt.Errorf("weight %q: invalid address", item)
		}
		w, err := strconv.Atoi(strings.TrimSpace(wStr))
		if err != nil || w < 0 || w > 65535 {
			return nil, fmt.Errorf("weight %q: want an integer 0..65535", item)
		}
		out[ip] = w
	}
	return out, nil
}

// SliceServiceName returns the Service an EndpointSlice belongs to ("" if unlabelled).
func SliceServiceName(es *discovery.EndpointSlice) string {
	return es.Labels[discovery.LabelServiceName]
}

// sliceEndpoints converts one EndpointSlice into endpoints per port name.
// weights may be nil.
func sliceEndpoints(es *discovery.EndpointSlice, weights map[netip.Addr]int, nodeName string) map[string][]Endpoint {
	out := map[string][]Endpoint{}
	appendSliceEndpoints(out, es, weights, nodeName)
	return out
}

// appendSliceEndpoints appends the slice's endpoints to out, per port name.
func appendSliceEndpoints(out map[string][]Endpoint, es *discovery.EndpointSlice, weights map[netip.Addr]int, nodeName string) {
	for _, p := range es.Ports {
		if p.Port == nil {
			continue
		}
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		for _, e := range es.Endpoints {
			if len(e.Addresses) == 0 {
				continue
			}
			ip, err := netip.ParseAddr(e.Addresses[0])
			if err != nil {
				continue
			}
			out[name] = append(out[name], makeEndpoint(e, ip, *p.Port, weights, nodeName))
		}
	}
}

func makeEndpoint(e discovery.Endpoint, ip netip.Addr, port int32, weights map[netip.Addr]int, nodeName string) Endpoint {
	ep := Endpoint{IP: ip, Port: port, Ready: true, Weight: 1}
	if c := e.Conditions; c.Ready != nil {
		ep.Ready = *c.Ready
	}
	// Unset serving means serving, whatever ready says, as in kube-proxy's
	// EndpointSliceCache: an all-terminating Service whose slices predate the
	// serving condition (or whose controller omits it) keeps its fallback endpoints.
	ep.Serving = e.Conditions.Serving == nil || *e.Conditions.Serving
	if c := e.Conditions; c.Terminating != nil {
		ep.Terminating = *c.Terminating
	}
	if e.NodeName != nil {
		ep.NodeName = *e.NodeName
		ep.IsLocal = nodeName != "" && ep.NodeName == nodeName
	}
	if e.Zone != nil {
		ep.Zone = *e.Zone
	}
	if h := e.Hints; h != nil && len(h.ForZones)+len(h.ForNodes) > 0 {
		ep.Hints = &Hints{}
		for _, z := range h.ForZones {
			ep.Hints.Zones = append(ep.Hints.Zones, z.Name)
		}
		for _, n := range h.ForNodes {
			ep.Hints.Nodes = append(ep.Hints.Nodes, n.Name)
		}
	}
	if w, ok := weights[ip]; ok {
		ep.Weight = w
	}
	return ep
}
