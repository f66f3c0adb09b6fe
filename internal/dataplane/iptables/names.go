package iptables

import (
	"strings"

	"kproxy.dev/kproxy/internal/state"
)

// Chain names kproxy owns, the same as kube-proxy's so that either can clean up after
// the other.
const (
	chainServices         = "KUBE-SERVICES"
	chainExternalServices = "KUBE-EXTERNAL-SERVICES"
	chainNodePorts        = "KUBE-NODEPORTS"
	chainPostrouting      = "KUBE-POSTROUTING"
	chainMarkMasq         = "KUBE-MARK-MASQ"
	chainForward          = "KUBE-FORWARD"
	chainProxyFirewall    = "KUBE-PROXY-FIREWALL"
	chainCanary           = "KUBE-PROXY-CANARY"
	// chainFirewall holds the "block incoming localnet connections" rule. Old
	// kubelets wrote an identical chain, so kproxy writes it only when it needs it
	// and never removes it during a sync (only on cleanup).
	chainFirewall = "KUBE-FIREWALL"
)

// Prefixes of the per-Service-port and per-endpoint chains.
const (
	prefixSvc   = "KUBE-SVC-"
	prefixSvl   = "KUBE-SVL-"
	prefixExt   = "KUBE-EXT-"
	prefixFw    = "KUBE-FW-"
	prefixSep   = "KUBE-SEP-"
	prefixOldXL = "KUBE-XLB-" // kube-proxy before 1.24; only removed, never written
)

var servicePrefixes = []string{prefixSvc, prefixSvl, prefixExt, prefixFw, prefixSep, prefixOldXL}

// isServiceChain reports whether a chain is one of the per-Service or per-endpoint
// chains of this layout.
func isServiceChain(name string) bool {
	for _, p := range servicePrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// hashName is prefix + 16 characters of a hash of parts (see appendHashName).
func hashName(prefix string, parts ...string) string {
	return string(appendHashName(nil, prefix, parts...))
}

// portString is the ServicePort's name in comments and hashes, formatted as
// kube-proxy formats it ("ns/name:port", or "ns/name" for an unnamed port) so that
// chain names are the same in both programs.
func portString(n state.ServicePortName) string {
	if n.Port == "" {
		return n.Namespace + "/" + n.Name
	}
	return n.Namespace + "/" + n.Name + ":" + n.Port
}

func lowerProto(n state.ServicePortName) string {
	switch n.Protocol {
	case "TCP":
		return "tcp"
	case "UDP":
		return "udp"
	case "SCTP":
		return "sctp"
	}
	return strings.ToLower(string(n.Protocol))
}

// portChains are the names of one ServicePort's chains.
type portChains struct {
	svc, svl, ext, fw string
}

func chainsFor(n state.ServicePortName) portChains {
	return chainsIn(&arena{}, portString(n), lowerProto(n))
}

// chainsIn builds the names in an arena; they share one hash with different prefixes
// in kube-proxy, so hash once.
func chainsIn(a *arena, base, proto string) portChains {
	s := a.spec()
	s.a.reserve(&s.start, 64)
	s.a.chunk = appendHashName(s.a.chunk, prefixSvc, base, proto)
	svc := s.str()
	hash := svc[len(prefixSvc):]
	name := func(prefix string) string { return a.spec().raw(prefix, hash).str() }
	return portChains{svc: svc, svl: name(prefixSvl), ext: name(prefixExt), fw: name(prefixFw)}
}

func endpointChain(n state.ServicePortName, ep string) string {
	return hashName(prefixSep, portString(n), lowerProto(n), ep)
}
