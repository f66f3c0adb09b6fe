//go:build linux

package e2e

import (
	"fmt"
	"slices"
	"strings"

	"kproxy.dev/kproxy/internal/testing/netns"
)

// service describes one test Service with one TCP or UDP port.
type service struct {
	Name      string
	ClusterIP string
	Port      int
	Protocol  string // TCP or UDP
	NodePort  int
	Affinity  bool
	// HealthCheckNodePort makes it a LoadBalancer Service with
	// externalTrafficPolicy Local.
	HealthCheckNodePort int
	// LocalEndpoints puts the endpoints on this node rather than another one;
	// Local puts only these on this node.
	LocalEndpoints bool
	Local          []*netns.NS
	// InternalLocal sets internalTrafficPolicy Local.
	InternalLocal bool
	// Terminating marks every endpoint serving and terminating, not ready.
	Terminating bool
	// Zones gives endpoints a zone hint (PreferClose), by backend.
	Zones map[*netns.NS]string
	// ExternalIP is added to spec.externalIPs.
	ExternalIP string
	// LoadBalancerIP makes it a LoadBalancer Service with this ingress IP, open to
	// SourceRanges only.
	LoadBalancerIP string
	SourceRanges   []string
	// Endpoints are backends; nil means the Service has no EndpointSlice at all.
	Endpoints []*netns.NS
}

// manifest renders the Service and its EndpointSlice as YAML.
func (s service) manifest() string {
	proto := s.Protocol
	if proto == "" {
		proto = "TCP"
	}
	target := backendPort
	if proto == "UDP" {
		target = udpPort
	}
	var b strings.Builder
	typ := "ClusterIP"
	if s.NodePort != 0 {
		typ = "NodePort"
	}
	if s.HealthCheckNodePort != 0 || s.LoadBalancerIP != "" {
		typ = "LoadBalancer"
	}
	fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: default
spec:
  type: %s
  clusterIP: %s
  clusterIPs: [%s]
`, s.Name, typ, s.ClusterIP, s.ClusterIP)
	if s.Affinity {
		b.WriteString("  sessionAffinity: ClientIP\n")
	}
	if s.InternalLocal {
		b.WriteString("  internalTrafficPolicy: Local\n")
	}
	if len(s.Zones) > 0 {
		b.WriteString("  trafficDistribution: PreferClose\n")
	}
	if s.HealthCheckNodePort != 0 {
		fmt.Fprintf(&b, "  externalTrafficPolicy: Local\n  healthCheckNodePort: %d\n", s.HealthCheckNodePort)
	}
	if s.ExternalIP != "" {
		fmt.Fprintf(&b, "  externalIPs: [%s]\n", s.ExternalIP)
	}
	if len(s.SourceRanges) > 0 {
		fmt.Fprintf(&b, "  loadBalancerSourceRanges: [%s]\n", strings.Join(s.SourceRanges, ", "))
	}
	fmt.Fprintf(&b, "  ports:\n  - name: p\n    protocol: %s\n    port: %d\n    targetPort: %d\n", proto, s.Port, target)
	if s.NodePort != 0 {
		fmt.Fprintf(&b, "    nodePort: %d\n", s.NodePort)
	}
	if s.LoadBalancerIP != "" {
		fmt.Fprintf(&b, "status:\n  loadBalancer:\n    ingress:\n    - ip: %s\n", s.LoadBalancerIP)
	}
	if s.Endpoints == nil {
		return b.String()
	}
	fmt.Fprintf(&b, `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %s-1
  namespace: default
  labels:
    kubernetes.io/service-name: %s
addressType: IPv4
ports:
- name: p
  protocol: %s
  port: %d
endpoints:`, s.Name, s.Name, proto, target)
	if len(s.Endpoints) == 0 {
		b.WriteString(" []\n")
		return b.String()
	}
	b.WriteString("\n")
	node := "other-node"
	if s.LocalEndpoints {
		node = nodeName
	}
	conds := "{ready: true}"
	if s.Terminating {
		conds = "{ready: false, serving: true, terminating: true}"
	}
	for _, e := range s.Endpoints {
		n := node
		if slices.Contains(s.Local, e) {
			n = nodeName
		}
		fmt.Fprintf(&b, "- addresses: [%s]\n  conditions: %s\n  nodeName: %s\n", e.IP, conds, n)
		if z := s.Zones[e]; z != "" {
			fmt.Fprintf(&b, "  zone: %s\n  hints:\n    forZones: [{name: %s}]\n", z, z)
		}
	}
	return b.String()
}
