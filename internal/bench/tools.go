package bench

import "os/exec"

// modeTools are the programs a mode runs during its syncs. Result.Tools records
// where each one resolved, because PATH decides which build is measured: the
// host's iptables or, say, the image's (scripts/build-iptables.sh), whose costs
// at 100,000 Services differ (docs/performance.md).
var modeTools = map[string][]string{
	"iptables": {"iptables-nft-restore", "iptables-legacy-restore"},
	"ipvs":     {"iptables-restore", "ipset"},
}

// resolveTools returns the path PATH gives each of mode's tools; tools not
// found are left out, and a mode that runs none gives nil.
func resolveTools(mode string) map[string]string {
	var out map[string]string
	for _, name := range modeTools[mode] {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = p
	}
	return out
}
