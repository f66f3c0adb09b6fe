package file

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"kproxy.dev/kproxy/internal/source"
	"kproxy.dev/kproxy/internal/state"
)

// problems collects field errors of one object; they are reported as one line.
type problems []string

// maxProblems is how many field errors of one object are spelt out.
const maxProblems = 10

// add records a field error. Every string argument (a value from the input) is
// clipped with source.Clip, so a huge value makes a short message.
func (p *problems) add(path *field.Path, format string, args ...any) {
	for i, a := range args {
		if v := reflect.ValueOf(a); v.Kind() == reflect.String {
			args[i] = source.Clip(v.String())
		}
	}
	*p = append(*p, path.String()+": "+fmt.Sprintf(format, args...))
}

func (p problems) err() error {
	switch {
	case len(p) == 0:
		return nil
	case len(p) > maxProblems:
		return fmt.Errorf("%s; and %d more", strings.Join(p[:maxProblems], "; "), len(p)-maxProblems)
	}
	return errors.New(strings.Join(p, "; "))
}

// validateObject checks what a dataplane relies on, so that a bad object is rejected
// here with its file, instead of half-working later.
func validateObject(obj runtime.Object) error {
	var p problems
	switch o := obj.(type) {
	case *v1.Service:
		validateService(&p, o)
	case *discovery.EndpointSlice:
		validateSlice(&p, o)
	case *v1.Node:
		validateNode(&p, o)
	case *networkingv1.ServiceCIDR:
		validateServiceCIDR(&p, o)
	}
	return p.err()
}

func validateName(p *problems, name string, check func(string) []string) {
	path := field.NewPath("metadata", "name")
	if name == "" {
		p.add(path, "required")
		return
	}
	for _, msg := range check(name) {
		p.add(path, "%q: %s", name, msg)
	}
}

func validateService(p *problems, svc *v1.Service) {
	validateName(p, svc.Name, validation.IsDNS1035Label)
	spec := field.NewPath("spec")
	switch svc.Spec.Type {
	case "", v1.ServiceTypeClusterIP, v1.ServiceTypeNodePort, v1.ServiceTypeLoadBalancer:
		validateClusterIPs(p, svc)
	case v1.ServiceTypeExternalName:
		if svc.Spec.ExternalName == "" {
			p.add(spec.Child("externalName"), "required for type ExternalName")
		}
	default:
		p.add(spec.Child("type"), "unknown type %q (want ClusterIP, NodePort, LoadBalancer or ExternalName)", svc.Spec.Type)
	}
	validateServicePorts(p, svc)
	for i, ip := range svc.Spec.ExternalIPs {
		validateIP(p, spec.Child("externalIPs").Index(i), ip)
	}
	for i, r := range svc.Spec.LoadBalancerSourceRanges {
		if _, err := netip.ParsePrefix(strings.TrimSpace(r)); err != nil {
			p.add(spec.Child("loadBalancerSourceRanges").Index(i), "invalid CIDR %q", r)
		}
	}
	for i, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP != "" {
			validateIP(p, field.NewPath("status", "loadBalancer", "ingress").Index(i).Child("ip"), ing.IP)
		}
	}
	validatePolicies(p, svc)
}

func validateClusterIPs(p *problems, svc *v1.Service) {
	spec := field.NewPath("spec")
	ip := svc.Spec.ClusterIP
	switch {
	case ip == "":
		p.add(spec.Child("clusterIP"), `required: a manifest has no IP allocator (use "None" for a headless Service)`)
		return
	case ip == v1.ClusterIPNone:
		return
	}
	validateIP(p, spec.Child("clusterIP"), ip)
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 {
		return
	}
	if ips[0] != ip {
		p.add(spec.Child("clusterIPs").Index(0), "%q must equal spec.clusterIP %q", ips[0], ip)
	}
	if len(ips) > 2 {
		p.add(spec.Child("clusterIPs"), "at most two addresses (one per IP family), got %d", len(ips))
	}
	var fams []bool
	for i, s := range ips {
		if a, ok := validateIP(p, spec.Child("clusterIPs").Index(i), s); ok {
			fams = append(fams, a.Is4())
		}
	}
	if len(fams) == 2 && fams[0] == fams[1] {
		p.add(spec.Child("clusterIPs"), "the two addresses must be of different IP families")
	}
}

func validateIP(p *problems, path *field.Path, s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		p.add(path, "invalid IP address %q", s)
		return a, false
	}
	return a, true
}

func validateServicePorts(p *problems, svc *v1.Service) {
	path := field.NewPath("spec", "ports")
	ports := svc.Spec.Ports
	headless := svc.Spec.ClusterIP == v1.ClusterIPNone
	if len(ports) == 0 && !headless && svc.Spec.Type != v1.ServiceTypeExternalName {
		p.add(path, "required: at least one port")
	}
	names := map[string]bool{}
	seen := map[string]bool{}
	for i, sp := range ports {
		pp := path.Index(i)
		validatePortName(p, pp.Child("name"), sp.Name, len(ports) > 1, names)
		validatePortNumber(p, pp.Child("port"), sp.Port)
		validateProtocol(p, pp.Child("protocol"), sp.Protocol)
		validateNodePort(p, pp.Child("nodePort"), sp.NodePort, svc.Spec.Type)
		validateTargetPort(p, pp.Child("targetPort"), sp.TargetPort)
		id := fmt.Sprintf("%d/%s", sp.Port, protocolOrTCP(sp.Protocol))
		if seen[id] {
			p.add(pp, "duplicate port %s", id)
		}
		seen[id] = true
	}
}

func validatePortName(p *problems, path *field.Path, name string, required bool, seen map[string]bool) {
	if name == "" {
		if required {
			p.add(path, "required when a Service has more than one port")
		}
		return
	}
	for _, msg := range validation.IsDNS1123Label(name) {
		p.add(path, "%q: %s", name, msg)
	}
	if seen[name] {
		p.add(path, "duplicate port name %q", name)
	}
	seen[name] = true
}

func validatePortNumber(p *problems, path *field.Path, port int32) {
	if port < 1 || port > 65535 {
		p.add(path, "%d out of range (1-65535)", port)
	}
}

func validateProtocol(p *problems, path *field.Path, proto v1.Protocol) {
	switch proto {
	case "", v1.ProtocolTCP, v1.ProtocolUDP, v1.ProtocolSCTP:
	default:
		p.add(path, "unknown protocol %q (want TCP, UDP or SCTP)", proto)
	}
}

func protocolOrTCP(proto v1.Protocol) v1.Protocol {
	if proto == "" {
		return v1.ProtocolTCP
	}
	return proto
}

func validateNodePort(p *problems, path *field.Path, port int32, typ v1.ServiceType) {
	if port == 0 {
		return
	}
	if typ != v1.ServiceTypeNodePort && typ != v1.ServiceTypeLoadBalancer {
		p.add(path, "not allowed for type %s (want NodePort or LoadBalancer)", typeOrClusterIP(typ))
		return
	}
	validatePortNumber(p, path, port)
}

func typeOrClusterIP(typ v1.ServiceType) v1.ServiceType {
	if typ == "" {
		return v1.ServiceTypeClusterIP
	}
	return typ
}

func validateTargetPort(p *problems, path *field.Path, tp intstr.IntOrString) {
	if tp.Type == intstr.String {
		for _, msg := range validation.IsValidPortName(tp.StrVal) {
			p.add(path, "%q: %s", tp.StrVal, msg)
		}
		return
	}
	if tp.IntVal != 0 {
		validatePortNumber(p, path, tp.IntVal)
	}
}

func validatePolicies(p *problems, svc *v1.Service) {
	spec := field.NewPath("spec")
	switch svc.Spec.ExternalTrafficPolicy {
	case "", v1.ServiceExternalTrafficPolicyCluster, v1.ServiceExternalTrafficPolicyLocal:
	default:
		p.add(spec.Child("externalTrafficPolicy"), "unknown policy %q (want Cluster or Local)", svc.Spec.ExternalTrafficPolicy)
	}
	if itp := svc.Spec.InternalTrafficPolicy; itp != nil {
		switch *itp {
		case v1.ServiceInternalTrafficPolicyCluster, v1.ServiceInternalTrafficPolicyLocal:
		default:
			p.add(spec.Child("internalTrafficPolicy"), "unknown policy %q (want Cluster or Local)", *itp)
		}
	}
	switch svc.Spec.SessionAffinity {
	case "", v1.ServiceAffinityNone, v1.ServiceAffinityClientIP:
	default:
		p.add(spec.Child("sessionAffinity"), "unknown affinity %q (want None or ClientIP)", svc.Spec.SessionAffinity)
	}
	if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
		if t := *c.ClientIP.TimeoutSeconds; t < 1 || t > 86400 {
			p.add(spec.Child("sessionAffinityConfig", "clientIP", "timeoutSeconds"), "%d out of range (1-86400)", t)
		}
	}
	if hc := svc.Spec.HealthCheckNodePort; hc != 0 {
		validatePortNumber(p, spec.Child("healthCheckNodePort"), hc)
	}
}

func validateSlice(p *problems, es *discovery.EndpointSlice) {
	validateName(p, es.Name, validation.IsDNS1123Subdomain)
	if state.SliceServiceName(es) == "" {
		p.add(field.NewPath("metadata", "labels").Key(discovery.LabelServiceName), "required: names the Service the slice belongs to")
	}
	at := field.NewPath("addressType")
	if n := len(es.Endpoints); n > MaxSliceEndpoints {
		p.add(field.NewPath("endpoints"), "%d entries, more than the %d an EndpointSlice may hold", n, MaxSliceEndpoints)
		return
	}
	switch es.AddressType {
	case discovery.AddressTypeIPv4, discovery.AddressTypeIPv6, discovery.AddressTypeFQDN:
		for i, e := range es.Endpoints {
			validateSliceEndpoint(p, field.NewPath("endpoints").Index(i), e, es.AddressType)
		}
	case "":
		p.add(at, "required (IPv4, IPv6 or FQDN)")
	default:
		p.add(at, "unknown address type %q (want IPv4, IPv6 or FQDN)", es.AddressType)
	}
	names := map[string]bool{}
	for i, port := range es.Ports {
		pp := field.NewPath("ports").Index(i)
		name := ""
		if port.Name != nil {
			name = *port.Name
		}
		validatePortName(p, pp.Child("name"), name, false, names)
		if port.Port != nil {
			validatePortNumber(p, pp.Child("port"), *port.Port)
		}
		if port.Protocol != nil {
			validateProtocol(p, pp.Child("protocol"), *port.Protocol)
		}
	}
	if w, ok := es.Annotations[state.AnnotationWeights]; ok {
		if _, err := state.ParseWeights(w); err != nil {
			p.add(field.NewPath("metadata", "annotations").Key(state.AnnotationWeights), "%v", err)
		}
	}
}

func validateSliceEndpoint(p *problems, path *field.Path, e discovery.Endpoint, at discovery.AddressType) {
	if len(e.Addresses) == 0 {
		p.add(path.Child("addresses"), "required: at least one address")
	}
	for j, addr := range e.Addresses {
		ap := path.Child("addresses").Index(j)
		if at == discovery.AddressTypeFQDN {
			for _, msg := range validation.IsDNS1123Subdomain(addr) {
				p.add(ap, "%q: %s", addr, msg)
			}
			continue
		}
		a, ok := validateIP(p, ap, addr)
		if ok && (at == discovery.AddressTypeIPv4) != a.Is4() {
			p.add(ap, "%q is not an %s address", addr, at)
		}
	}
}

func validateNode(p *problems, n *v1.Node) {
	validateName(p, n.Name, validation.IsDNS1123Subdomain)
	for i, a := range n.Status.Addresses {
		if a.Type == v1.NodeInternalIP || a.Type == v1.NodeExternalIP {
			validateIP(p, field.NewPath("status", "addresses").Index(i).Child("address"), a.Address)
		}
	}
}

// validateServiceCIDR checks spec.cidrs as the API server does: one or two
// canonical prefixes, one per IP family.
func validateServiceCIDR(p *problems, sc *networkingv1.ServiceCIDR) {
	validateName(p, sc.Name, validation.IsDNS1123Subdomain)
	path := field.NewPath("spec", "cidrs")
	switch n := len(sc.Spec.CIDRs); {
	case n == 0:
		p.add(path, "required")
	case n > 2:
		p.add(path, "at most two prefixes (one per IP family), got %d", n)
	}
	var fams []bool
	for i, s := range sc.Spec.CIDRs {
		pf, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			p.add(path.Index(i), "invalid CIDR %q", s)
			continue
		case pf.Addr().Is4In6():
			p.add(path.Index(i), "%q: IPv4-mapped IPv6 prefixes are not allowed", s)
			continue
		case pf.Masked() != pf:
			p.add(path.Index(i), "%q is not in canonical form (want %s)", s, pf.Masked())
		}
		fams = append(fams, pf.Addr().Is4())
	}
	if len(fams) == 2 && fams[0] == fams[1] {
		p.add(path, "the two prefixes must be of different IP families")
	}
}
