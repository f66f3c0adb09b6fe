package iptables

import (
	"fmt"
	"net/netip"
	"runtime"
	"strconv"
	"sync"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// RenderConfig is the node-wide input of Render (from KubeProxyConfiguration and the
// node's addresses).
type RenderConfig struct {
	// MasqueradeBit is the fwmark bit that asks KUBE-POSTROUTING to masquerade (14).
	MasqueradeBit int
	// MasqueradeAll masquerades all traffic to ClusterIPs.
	MasqueradeAll bool
	// ClusterCIDRs are the pod networks: traffic from elsewhere to a ClusterIP is
	// masqueraded, and pods reaching a Local-policy external address are sent to
	// all endpoints. Empty disables local-traffic detection.
	ClusterCIDRs []netip.Prefix
	// NodePortAddresses are the addresses NodePorts answer on; nil means every local
	// address (-m addrtype --dst-type LOCAL).
	NodePortAddresses []netip.Addr
	// NoLocalhostNodePorts keeps NodePorts off 127.0.0.0/8 (localhostNodePorts false).
	NoLocalhostNodePorts bool
	// BlockLocalnet installs filter KUBE-FIREWALL's "block incoming localnet
	// connections" rule. It must be set whenever route_localnet is (see
	// LocalnetPolicy): route_localnet alone lets any host on the node's links reach
	// services bound to 127.0.0.1 (CVE-2020-8558). IPv4 only.
	BlockLocalnet bool
	// IPv6 renders the ip6tables ruleset: only IPv6 addresses (ClusterIPs, external
	// and LB IPs, source ranges, endpoints, NodePort addresses, cluster CIDRs),
	// icmp6 rejects, and no localhost NodePorts. Unset renders IPv4 only. Each
	// family is a separate Proxier writing its own tables, as in kube-proxy.
	IPv6 bool
	// FoldRemote folds every Service's endpoints on other nodes into its choice
	// rules instead of giving each a KUBE-SEP chain (render_fold.go). The
	// Proxier sets it from the node's endpoint count (foldWanted); Services
	// above bucketAbove endpoints fold regardless.
	FoldRemote bool
}

func (c RenderConfig) markMasq() string {
	bit := c.MasqueradeBit
	if bit <= 0 || bit > 31 {
		bit = 14
	}
	return fmt.Sprintf("0x%x", uint32(1)<<bit)
}

// Render computes the whole ruleset for a snapshot. It is pure.
func Render(snap *state.Snapshot, cfg RenderConfig) *Ruleset {
	return RenderRequest(dataplane.NewRequest(snap), cfg)
}

// RenderRequest computes the whole ruleset with the core's categorised endpoints.
// It is pure. Services render independently, so large snapshots are split over the
// available CPUs.
func RenderRequest(req *dataplane.Request, cfg RenderConfig) *Ruleset {
	snap := req.Snapshot
	r := renderFixed(cfg)
	r.Services = make(map[state.ServicePortName]*ServiceRules, snap.Len())
	names := make([]state.ServicePortName, 0, snap.Len())
	for n := range snap.All() {
		names = append(names, n)
	}
	workers := min(runtime.GOMAXPROCS(0), len(names)/500+1)
	out := make([]*ServiceRules, len(names))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rc := newRenderCtx(cfg)
			for i := w; i < len(names); i += workers {
				out[i] = rc.service(req, names[i])
			}
		}(w)
	}
	wg.Wait()
	for i, n := range names {
		r.Services[n] = out[i]
	}
	return r
}

// renderCtx caches what every Service renders the same way; one per goroutine.
type renderCtx struct {
	cfg   RenderConfig
	probs []string
	a     *arena
}

func newRenderCtx(cfg RenderConfig) *renderCtx { return &renderCtx{cfg: cfg, a: &arena{}} }

// probability is the statistic match probability of endpoint i of n: 1/(n-i), with
// ten decimals as kube-proxy writes it.
func (rc *renderCtx) probability(remaining int) string {
	for len(rc.probs) <= remaining {
		k := len(rc.probs)
		p := ""
		if k > 0 {
			p = strconv.FormatFloat(1/float64(k), 'f', 10, 64)
		}
		rc.probs = append(rc.probs, p)
	}
	return rc.probs[remaining]
}
