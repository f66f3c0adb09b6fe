package nftables

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"strings"

	"kproxy.dev/kproxy/internal/state"
)

// Fixed object names. Table, base chain names and priorities are API for other
// firewall users on the node (see README.md); everything else is not.
const (
	chainServices       = "services"
	chainEndpointsCheck = "service-endpoints-check"
	chainNodePortsCheck = "nodeport-endpoints-check"
	chainFirewallCheck  = "firewall-check"
	chainReject         = "reject-chain"
	chainMasquerading   = "masquerading"
	chainMarkMasq       = "mark-for-masquerade"
	chainClusterIPs     = "cluster-ips-check"

	mapServiceIPs       = "service-ips"
	mapServiceNodePorts = "service-nodeports"
	// Services without a usable endpoint: plain sets, no verdict (see
	// service-endpoints-check in renderNode).
	setNoEndpointReject      = "no-endpoint-reject-ips"
	setNoEndpointDrop        = "no-endpoint-drop-ips"
	setNoEndpointRejectPorts = "no-endpoint-reject-ports"
	setNoEndpointDropPorts   = "no-endpoint-drop-ports"
	mapFirewallIPs           = "firewall-ips"
	setNodePortIPs           = "nodeport-ips"
	mapServiceEndpoints      = "service-endpoints"
	mapNodePortEndpoints     = "nodeport-endpoints"
	setMasqServices          = "masquerade-services"
	setHairpin               = "hairpin"
	setClusterIPs            = "cluster-ips"
	setServiceCIDRs          = "service-cidrs"

	// The shared path's dispatch (shared.go): plain sets, no verdict.
	setPickIPs           = "pick-ips"
	setExternalPickIPs   = "external-pick-ips"
	setNodePortPickPorts = "nodeport-pick-ports"
	chainPick            = "pick"
	chainExternalPick    = "external-pick"
	chainNodePortPick    = "nodeport-pick"
)

// sharedSets are the node-wide sets and maps; every other set belongs to one
// ServicePort and goes away with it.
var sharedSets = map[string]bool{
	mapServiceIPs: true, mapServiceNodePorts: true, setNoEndpointReject: true, setNoEndpointDrop: true,
	setNoEndpointRejectPorts: true, setNoEndpointDropPorts: true, mapFirewallIPs: true, setNodePortIPs: true,
	mapServiceEndpoints: true, mapNodePortEndpoints: true, setMasqServices: true, setHairpin: true,
	setClusterIPs: true, setServiceCIDRs: true,
	setPickIPs: true, setExternalPickIPs: true, setNodePortPickPorts: true,
}

func init() {
	for n := 1; n <= maxSharedPick; n++ {
		sharedSets[pickSet(n)], sharedSets[externalPickSet(n)], sharedSets[nodePortPickSet(n)] = true, true, true
	}
}

// maxSharedPick is the largest endpoint count served by the shared pick chains;
// Services with more get pick chains of their own (pickChains).
const maxSharedPick = 128

func pickChain(n int) string         { return fmt.Sprintf("pick-%d", n) }
func externalPickChain(n int) string { return fmt.Sprintf("external-pick-%d", n) }
func nodePortPickChain(n int) string { return fmt.Sprintf("nodeport-pick-%d", n) }

// The plain sets naming the shared-path Services with n endpoints (shared.go).
func pickSet(n int) string         { return fmt.Sprintf("pick-%d-ips", n) }
func externalPickSet(n int) string { return fmt.Sprintf("external-pick-%d-ips", n) }
func nodePortPickSet(n int) string { return fmt.Sprintf("nodeport-pick-%d-ports", n) }

// Numeric priorities: nft 1.0.6 rejects the name dstnat outside prerouting.
const (
	priorityDstNAT = -100
	prioritySrcNAT = 100
	priorityFilter = priorityDstNAT - 10
	// priorityFilterPostDNAT sees locally generated packets after nat-output's DNAT.
	priorityFilterPostDNAT = priorityDstNAT + 10
)

// portNames derives the per-ServicePort object names. Names are readable (they
// carry namespace, name, protocol and port name) and unique (an 8-character hash of
// the same, since "/" and "_" can repeat inside Kubernetes names).
type portNames struct {
	base string
}

func newPortNames(n state.ServicePortName) portNames {
	readable := fmt.Sprintf("%s/%s/%s/%s", n.Namespace, n.Name, strings.ToLower(string(n.Protocol)), n.Port)
	return portNames{base: shortHash(readable) + "-" + readable}
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return strings.ToLower(base32.StdEncoding.EncodeToString(sum[:])[:8])
}

func (p portNames) service() string  { return "service-" + p.base }
func (p portNames) local() string    { return "local-" + p.base }
func (p portNames) external() string { return "external-" + p.base }
func (p portNames) firewall() string { return "firewall-" + p.base }
func (p portNames) nodePort() string { return "nodeport-" + p.base }

// selectMap is the verdict map of a chain that picks endpoints by index.
func (p portNames) selectMap(chainName string) string { return "select-" + chainName }

func (p portNames) endpoint(ep netip.AddrPort) string {
	return fmt.Sprintf("endpoint-%s__%s/%d", p.base, addrInName(ep.Addr()), ep.Port())
}

// addrInName spells an address with characters nft accepts in an unquoted name.
func addrInName(a netip.Addr) string { return strings.ReplaceAll(a.String(), ":", ".") }

// affinity names the client set of one endpoint. The timeout is part of the name so
// a changed timeout creates a new set instead of redeclaring a live one.
func (p portNames) affinity(ep netip.AddrPort, timeout int) string {
	return fmt.Sprintf("affinity-%s__%s/%d/%d", p.base, addrInName(ep.Addr()), ep.Port(), timeout)
}
