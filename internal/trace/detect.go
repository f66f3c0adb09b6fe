package trace

import (
	"fmt"
	"strings"
)

// Detect says which mode a dump is from: "iptables" (iptables-save), "nftables"
// (nft list ruleset) or "ipvs" (ipvsadm -Ln).
func Detect(text string) (string, error) {
	for _, raw := range strings.Split(text, "\n") {
		l := strings.TrimSpace(raw)
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
			continue
		case strings.HasPrefix(l, "*") || strings.HasPrefix(l, ":") || strings.HasPrefix(l, "-A ") ||
			strings.HasPrefix(l, "[") && strings.Contains(l, "] -A "):
			return "iptables", nil
		case strings.HasPrefix(l, "table ") && strings.HasSuffix(l, "{"):
			return "nftables", nil
		case strings.HasPrefix(l, "IP Virtual Server") || strings.HasPrefix(l, "Prot LocalAddress"):
			return "ipvs", nil
		}
		f := strings.Fields(l)
		if len(f) >= 2 && (f[0] == "TCP" || f[0] == "UDP" || f[0] == "SCTP") {
			return "ipvs", nil
		}
		return "", fmt.Errorf("cannot tell what the dump is from its first line %q: "+
			"want iptables-save, nft list ruleset or ipvsadm -Ln output (or give --mode)", clip(l))
	}
	return "", fmt.Errorf("the dump is empty")
}

// TraceText traces p through a dump of the given mode ("" detects it).
func TraceText(mode, text string, p Packet, o Options) (*Result, error) {
	if mode == "" {
		m, err := Detect(text)
		if err != nil {
			return nil, err
		}
		mode = m
	}
	switch mode {
	case "iptables":
		return TraceIptables(text, p, o)
	case "nftables":
		return TraceNftables(text, p, o)
	case "ipvs":
		vss, err := ParseIpvsadm(text)
		if err != nil {
			return nil, err
		}
		return TraceVirtualServices("ipvs", vss, p, o), nil
	}
	return nil, fmt.Errorf("--mode %q: a dump can be iptables, nftables or ipvs", mode)
}
