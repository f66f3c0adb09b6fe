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
		case strings.HasPrefix(l, "create ") || strings.HasPrefix(l, "Name: "):
			return "ipset", nil
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
	return TraceDumps(mode, []string{text}, p, o)
}

// TraceDumps traces p through one or more dumps of one node: an iptables-save or
// nft list ruleset text, or for ipvs mode ipvsadm -Ln with (optionally) the
// iptables-save and ipset save texts of the same node.
func TraceDumps(mode string, texts []string, p Packet, o Options) (*Result, error) {
	byKind := map[string]string{}
	for i, t := range texts {
		k, err := Detect(t)
		if err != nil {
			return nil, fmt.Errorf("dump %d: %w", i+1, err)
		}
		if _, dup := byKind[k]; dup {
			return nil, fmt.Errorf("two %s dumps: give one per kind", k)
		}
		byKind[k] = t
	}
	if s, ok := byKind["ipset"]; ok {
		sets, err := ParseIpset(s)
		if err != nil {
			return nil, err
		}
		o.IPSets = sets
	}
	if mode == "" {
		switch {
		case byKind["ipvs"] != "":
			mode = "ipvs"
		case byKind["iptables"] != "" && byKind["nftables"] != "":
			return nil, fmt.Errorf("both an iptables and an nftables dump: give --mode")
		case byKind["iptables"] != "":
			mode = "iptables"
		case byKind["nftables"] != "":
			mode = "nftables"
		default:
			return nil, fmt.Errorf("an ipset dump alone says nothing about Services: add the ipvsadm -Ln or iptables-save text")
		}
	}
	switch mode {
	case "iptables", "nftables":
		if byKind[mode] == "" {
			return nil, fmt.Errorf("--mode %s: no %s dump given", mode, mode)
		}
		if mode == "iptables" {
			return TraceIptables(byKind[mode], p, o)
		}
		return TraceNftables(byKind[mode], p, o)
	case "ipvs":
		if byKind["ipvs"] == "" {
			return nil, fmt.Errorf("--mode ipvs: no ipvsadm -Ln dump given")
		}
		vss, err := ParseIpvsadm(byKind["ipvs"])
		if err != nil {
			return nil, err
		}
		return TraceIPVS(vss, byKind["iptables"], p, o)
	}
	return nil, fmt.Errorf("--mode %q: a dump can be iptables, nftables or ipvs", mode)
}
