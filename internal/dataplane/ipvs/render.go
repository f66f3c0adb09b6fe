//go:build linux

package ipvs

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"kproxy.dev/kproxy/internal/lb"
	"kproxy.dev/kproxy/internal/state"
)

// renderOptions are the node-wide inputs of rendering.
type renderOptions struct {
	// DefaultScheduler applies to Services without the scheduler annotation.
	DefaultScheduler string
	// NodePortAddrs are the node addresses NodePorts are served on.
	NodePortAddrs []netip.Addr
	// Lacking are schedulers the kernel refused: Services asking for one get the
	// default.
	Lacking map[string]bool
}

// setEntry is one member of one ipset.
type setEntry struct {
	Set   string
	Entry string
}

// portModel is what one ServicePort contributes to the kernel.
type portModel struct {
	Servers []*virtualServer
	// Addrs are made local through kube-ipvs0 (local routes).
	Addrs []netip.Addr
	Sets  []setEntry
	// Warnings are logged when the port is synced (a scheduler falling back).
	Warnings []string
}

// objects counts the kernel objects of the model: virtual servers and real servers.
func (m *portModel) objects() int {
	n := len(m.Servers)
	for _, vs := range m.Servers {
		n += len(vs.Dests)
	}
	return n
}

// renderPort turns one ServicePort and its categorised endpoints into virtual
// servers, addresses and ipset entries. It is pure.
func renderPort(sp *state.ServicePort, cat state.Categorized, o renderOptions) (portModel, error) {
	var m portModel
	proto := protoNumber(sp.Protocol)
	if proto == 0 {
		return m, fmt.Errorf("service %s: protocol %q not supported", sp.Name, sp.Protocol)
	}
	tmpl, warn, err := serverTemplate(sp, o)
	if err != nil {
		return m, err
	}
	if warn != "" {
		m.Warnings = append(m.Warnings, warn)
	}
	pol := policyFor(sp, cat)
	internal, external := pol.internal, pol.external
	port := uint16(sp.Port)
	lower := strings.ToLower(string(sp.Protocol))
	ipPort := func(a netip.Addr) string { return a.String() + "," + lower + ":" + strconv.Itoa(int(sp.Port)) }
	// dropOutside records an external address whose outside clients are dropped.
	dropOutside := func(a netip.Addr, entry string) {
		if pol.dropOutside {
			m.Sets = append(m.Sets, setEntry{setName(setExternalNoLocal, a), entry})
		}
	}

	for _, ip := range sp.ClusterIPs {
		m.add(tmpl, vsKey{ip, port, proto}, internal)
		m.Addrs = append(m.Addrs, ip)
		m.Sets = append(m.Sets, setEntry{setName(setClusterIP, ip), ipPort(ip)})
		if pol.dropInternal {
			m.Sets = append(m.Sets, setEntry{setName(setClusterIPNoLocal, ip), ipPort(ip)})
		}
	}
	for _, ip := range sp.ExternalIPs {
		m.add(tmpl, vsKey{ip, port, proto}, external)
		dropOutside(ip, ipPort(ip))
		m.Addrs = append(m.Addrs, ip)
		m.Sets = append(m.Sets, setEntry{setName(pick(sp.ExternalPolicyLocal, setExternalIPLocal, setExternalIP), ip), ipPort(ip)})
	}
	for _, ip := range sp.LoadBalancerIPs {
		m.add(tmpl, vsKey{ip, port, proto}, external)
		dropOutside(ip, ipPort(ip))
		m.Addrs = append(m.Addrs, ip)
		m.Sets = append(m.Sets, setEntry{setName(setLoadBalancer, ip), ipPort(ip)})
		if sp.ExternalPolicyLocal {
			m.Sets = append(m.Sets, setEntry{setName(setLoadBalancerLocal, ip), ipPort(ip)})
		}
		if len(sp.LoadBalancerSourceRanges) > 0 {
			m.Sets = append(m.Sets, setEntry{setName(setLoadBalancerFW, ip), ipPort(ip)})
			for _, r := range sp.LoadBalancerSourceRanges {
				if r.Addr().Is4() == ip.Is4() {
					m.Sets = append(m.Sets, setEntry{setName(setLoadBalancerSourceCIDR, ip), ipPort(ip) + "," + netString(r)})
				}
			}
		}
	}
	if sp.NodePort != 0 {
		m.renderNodePort(sp, tmpl, external, o.NodePortAddrs)
		for _, a := range o.NodePortAddrs {
			if !a.IsLoopback() && familyServed(sp, a) {
				dropOutside(a, a.String()+","+lower+":"+strconv.Itoa(int(sp.NodePort)))
			}
		}
	}
	if sp.HealthCheckNodePort != 0 {
		for _, fam := range families(sp) {
			m.Sets = append(m.Sets, setEntry{setName(setHealthCheckNodePort, fam), strconv.Itoa(int(sp.HealthCheckNodePort))})
		}
	}
	// Hairpin masquerade: only an endpoint on this node can reach itself through
	// this node's virtual servers, so only local endpoints get an entry, as in
	// kube-proxy: the set is bounded by the node's pods, not by the cluster's
	// endpoints (ipset's maxelem is 65536).
	for _, ep := range cat.AllReachable {
		if ep.IsLocal {
			m.Sets = append(m.Sets, setEntry{setName(setLoopBack, ep.IP), fmt.Sprintf("%s,%s:%d,%s", ep.IP, lower, ep.Port, ep.IP)})
		}
	}
	for _, a := range m.Addrs {
		m.Sets = append(m.Sets, setEntry{setName(setIPVSIPs, a), a.String()})
	}
	return m, nil
}

func (m *portModel) renderNodePort(sp *state.ServicePort, tmpl virtualServer, eps []state.Endpoint, addrs []netip.Addr) {
	proto := protoNumber(sp.Protocol)
	lower := strings.ToLower(string(sp.Protocol))
	np := strconv.Itoa(int(sp.NodePort))
	for _, a := range addrs {
		if a.IsLoopback() || !familyServed(sp, a) {
			continue
		}
		m.add(tmpl, vsKey{a, uint16(sp.NodePort), proto}, eps)
		if proto == protoSCTP {
			m.Sets = append(m.Sets, setEntry{setName(pick(sp.ExternalPolicyLocal, setNodePortLocalSCTP, setNodePortSCTP), a), a.String() + "," + lower + ":" + np})
		}
	}
	if proto == protoSCTP {
		return
	}
	for _, fam := range families(sp) {
		base := map[uint16][2]string{
			protoTCP: {setNodePortTCP, setNodePortLocalTCP},
			protoUDP: {setNodePortUDP, setNodePortLocalUDP},
		}[proto]
		m.Sets = append(m.Sets, setEntry{setName(pick(sp.ExternalPolicyLocal, base[1], base[0]), fam), np})
	}
}

// add appends a virtual server for key with the endpoints of the family of key.
func (m *portModel) add(tmpl virtualServer, key vsKey, eps []state.Endpoint) {
	vs := tmpl
	vs.Key = key
	vs.Dests = make(map[netip.AddrPort]int, len(eps))
	for _, ep := range eps {
		if ep.IP.Is4() != key.Addr.Is4() {
			continue
		}
		w := ep.Weight
		if w < 0 {
			w = 0
		}
		vs.Dests[ep.AddrPort()] = w
	}
	m.Servers = append(m.Servers, &vs)
}

// serverTemplate holds what every virtual server of the port shares: scheduler,
// flags and persistence. A scheduler kproxy knows but the kernel has no module for
// (random, which the iptables and nftables modes use, or one the kernel refused)
// falls back to the node default with a warning, so the same annotation works in
// every mode; a name nobody knows is an error.
func serverTemplate(sp *state.ServicePort, o renderOptions) (vs virtualServer, warning string, err error) {
	def := o.DefaultScheduler
	if def == "" {
		def = "rr"
	}
	sched, flagNames := sp.Scheduler, sp.SchedulerFlags
	if sched == "" {
		sched = def
	}
	if !knownScheduler(sched) || o.Lacking[sched] {
		if lb.Validate(sched, nil) != nil {
			return vs, "", fmt.Errorf("service %s: annotation %s: unknown IPVS scheduler %q", sp.Name, state.AnnotationScheduler, sched)
		}
		warning = fmt.Sprintf("service %s: annotation %s: the kernel has no IPVS scheduler %q, using the node default %q",
			sp.Name, state.AnnotationScheduler, sched, def)
		// The flags belonged to the scheduler asked for.
		sched, flagNames = def, nil
	}
	flags, err := schedulerFlags(sched, flagNames)
	if err != nil {
		return vs, "", fmt.Errorf("service %s: annotation %s: %v", sp.Name, state.AnnotationSchedulerFlags, err)
	}
	vs = virtualServer{Scheduler: sched, Flags: flags, Owner: sp.Name.String()}
	if sp.AffinityTimeout > 0 {
		vs.Flags |= flagPersistent
		vs.Timeout = uint32(sp.AffinityTimeout.Seconds())
	}
	return vs, warning, nil
}

// families returns one representative address per IP family the port serves, used
// only to pick the family of family-specific set names.
func families(sp *state.ServicePort) []netip.Addr {
	var has4, has6 bool
	for _, ip := range sp.ClusterIPs {
		has4 = has4 || ip.Is4()
		has6 = has6 || ip.Is6()
	}
	if !has4 && !has6 {
		has4 = true
	}
	var out []netip.Addr
	if has4 {
		out = append(out, netip.IPv4Unspecified())
	}
	if has6 {
		out = append(out, netip.IPv6Unspecified())
	}
	return out
}

func familyServed(sp *state.ServicePort, a netip.Addr) bool {
	for _, f := range families(sp) {
		if f.Is4() == a.Is4() {
			return true
		}
	}
	return false
}

func pick(cond bool, yes, no string) string {
	if cond {
		return yes
	}
	return no
}

// netString prints a prefix the way ipset save does: a host prefix as a bare address.
func netString(p netip.Prefix) string {
	p = p.Masked()
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}
