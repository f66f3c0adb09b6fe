package iptables

import (
	"crypto/sha256"
	"encoding/base32"
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

// hashName is prefix + the first 16 characters of base32(sha256(parts...)), as in
// kube-proxy: at most 9+16 = 25 characters, within iptables' 28-character limit.
func hashName(prefix string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	enc := base32.StdEncoding.EncodeToString(h.Sum(sum[:0]))
	return prefix + enc[:16]
}

// portChains are the names of one ServicePort's chains.
type portChains struct {
	svc, svl, ext, fw string
}

func chainsFor(n state.ServicePortName) portChains {
	base := n.String()
	proto := strings.ToLower(string(n.Protocol))
	return portChains{
		svc: hashName(prefixSvc, base, proto),
		svl: hashName(prefixSvl, base, proto),
		ext: hashName(prefixExt, base, proto),
		fw:  hashName(prefixFw, base, proto),
	}
}

func endpointChain(n state.ServicePortName, ep string) string {
	return hashName(prefixSep, n.String(), strings.ToLower(string(n.Protocol)), ep)
}
