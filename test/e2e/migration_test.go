//go:build linux

package e2e

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/testing/netns"
)

// kubeProxyChain is kube-proxy's per-Service-port (and per-endpoint) chain name,
// computed here from its documented recipe, independently of kproxy's code:
// prefix + the first 16 characters of base32(sha256(parts)).
func kubeProxyChain(prefix string, parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "")))
	return prefix + base32.StdEncoding.EncodeToString(sum[:])[:16]
}

// kubeProxyRuleset is what kube-proxy's iptables mode writes for default/web port p
// (ClusterIP 10.96.0.10:80/TCP) with the given endpoints, plus the rules of a Service
// deleted while kube-proxy was down (default/gone) and a chain of a kube-proxy older
// than 1.24 (KUBE-XLB-*): kproxy must adopt the first and remove the others.
func kubeProxyRuleset(endpoints []*netns.NS) (rules string, svc string, stale []string) {
	svc = kubeProxyChain("KUBE-SVC-", "default/web:p", "tcp")
	goneSvc := kubeProxyChain("KUBE-SVC-", "default/gone:p", "tcp")
	goneSep := kubeProxyChain("KUBE-SEP-", "default/gone:p", "tcp", "10.244.9.2:8080")
	xlb := kubeProxyChain("KUBE-XLB-", "default/old:p", "tcp")
	var nat, chains strings.Builder
	for i, e := range endpoints {
		ep := fmt.Sprintf("%s:%d", e.IP, backendPort)
		sep := kubeProxyChain("KUBE-SEP-", "default/web:p", "tcp", ep)
		fmt.Fprintf(&chains, ":%s - [0:0]\n", sep)
		prob := ""
		if n := len(endpoints) - i; n > 1 {
			prob = fmt.Sprintf("-m statistic --mode random --probability %.10f ", 1/float64(n))
		}
		fmt.Fprintf(&nat, "-A %s -m comment --comment \"default/web:p -> %s\" %s-j %s\n", svc, ep, prob, sep)
		fmt.Fprintf(&nat, "-A %s -s %s/32 -m comment --comment \"default/web:p\" -j KUBE-MARK-MASQ\n", sep, e.IP)
		fmt.Fprintf(&nat, "-A %s -p tcp -m comment --comment \"default/web:p\" -m tcp -j DNAT --to-destination %s\n", sep, ep)
	}
	rules = `*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-PROXY-CANARY - [0:0]
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-FORWARD -m conntrack --ctstate INVALID -m comment --comment "kubernetes forwarding rules" -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-PROXY-CANARY - [0:0]
:` + svc + ` - [0:0]
:` + goneSvc + ` - [0:0]
:` + goneSep + ` - [0:0]
:` + xlb + ` - [0:0]
` + chains.String() + `-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "default/web:p cluster IP" -m tcp --dport 80 -j ` + svc + `
-A KUBE-SERVICES -d 10.96.0.99/32 -p tcp -m comment --comment "default/gone:p cluster IP" -m tcp --dport 80 -j ` + goneSvc + `
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A ` + svc + ` ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment "default/web:p cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
` + nat.String() + `-A ` + goneSvc + ` -j ` + goneSep + `
-A ` + goneSep + ` -p tcp -m tcp -j DNAT --to-destination 10.244.9.2:8080
COMMIT
`
	return rules, svc, []string{goneSvc, goneSep, xlb}
}

// loadKubeProxyRules writes the ruleset with iptables-restore into the node, as a
// kube-proxy that has just exited leaves it.
func loadKubeProxyRules(t *testing.T, node *netns.NS, backend, rules string) {
	t.Helper()
	runOnFile(t, node, rules, "iptables-"+backend+"-restore", "--noflush")
}

// runOnFile writes content to a temporary file and runs cmd in ns with the
// file's path as its last argument (iptables-restore, nft -f).
func runOnFile(t *testing.T, ns *netns.NS, content string, cmd ...string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "input")
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	ns.MustRun(t, cmd[0], append(cmd[1:], f)...)
}

// prober (startProber) opens a new connection to addr every few milliseconds until stopped and
// counts those that failed.
type prober struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	firstErr   error
	stop       chan struct{}
	done       chan struct{}
}

func startProber(from *netns.NS, addr string) *prober {
	p := &prober{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := from.AskTCP(addr, time.Second); err != nil {
				p.failed.Add(1)
				p.mu.Lock()
				if p.firstErr == nil {
					p.firstErr = err
				}
				p.mu.Unlock()
				continue
			}
			p.ok.Add(1)
		}
	}()
	return p
}

func (p *prober) finish() (ok, failed int64, firstErr error) {
	close(p.stop)
	<-p.done
	return p.ok.Load(), p.failed.Load(), p.firstErr
}

func chainsIn(t *testing.T, node *netns.NS, backend string) string {
	return node.MustRun(t, "iptables-"+backend+"-save")
}

// TestTakeoverFromKubeProxyIptablesKeepsTraffic is docs/migration.md's node step in
// iptables mode: kube-proxy has exited leaving its rules, kproxy starts in the same
// mode and adopts them (same chain names), so no connection fails at any point; the
// chains of Services kube-proxy no longer serves go away.
func TestTakeoverFromKubeProxyIptablesKeepsTraffic(t *testing.T) {
	netns.RequireRoot(t)
	for _, m := range []mode{iptablesMode("nft"), iptablesMode("legacy")} {
		t.Run(m.Name, func(t *testing.T) { takeOverKubeProxyIptables(t, m) })
	}
}

func takeOverKubeProxyIptables(t *testing.T, m mode) {
	backend := strings.TrimPrefix(m.Name, "iptables-")
	c := newCluster(t, m, 2)
	rules, svc, stale := kubeProxyRuleset(c.backends)
	loadKubeProxyRules(t, c.env.Node, backend, rules)
	// kube-proxy's rules serve on their own before kproxy starts.
	c.askUntilAll(c.client, "10.96.0.10:80", c.names(c.backends...))

	p := startProber(c.client, "10.96.0.10:80")
	c.apply("web", service{Name: "web", ClusterIP: "10.96.0.10", Port: 80, Endpoints: c.backends}.manifest())
	c.start()
	c.eventually("kube-proxy's leftover chains removed", func() error {
		saved := chainsIn(t, c.env.Node, backend)
		for _, ch := range stale {
			if strings.Contains(saved, ch) {
				return fmt.Errorf("%s still there", ch)
			}
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // connections after the takeover, too
	ok, failed, firstErr := p.finish()
	if failed > 0 || ok < 10 {
		t.Fatalf("during takeover: %d connections ok, %d failed (first: %v); want none failed", ok, failed, firstErr)
	}
	if saved := chainsIn(t, c.env.Node, backend); !strings.Contains(saved, ":"+svc+" ") {
		t.Errorf("kproxy renamed kube-proxy's chain %s: kube-proxy could not take the node back in place", svc)
	}
	c.askUntilAll(c.client, "10.96.0.10:80", c.names(c.backends...))
}

// Starting in nftables mode removes a previous kube-proxy's iptables rules (in both
// iptables backends), as kube-proxy 1.29+ does, and serves from nftables.
func TestNftablesStartRemovesKubeProxyIptablesRules(t *testing.T) {
	netns.RequireRoot(t)
	c := newCluster(t, nftablesMode(), 2)
	rules, _, _ := kubeProxyRuleset(c.backends)
	loadKubeProxyRules(t, c.env.Node, "nft", rules)
	loadKubeProxyRules(t, c.env.Node, "legacy", rules)
	c.apply("web", service{Name: "web", ClusterIP: "10.96.0.10", Port: 80, Endpoints: c.backends}.manifest())
	c.start()
	// kube-proxy's rules answer before kproxy acts: wait for kproxy's table first.
	c.eventually("kproxy's table in place", func() error {
		if out := c.env.Node.MustRun(t, "nft", "list", "tables"); !strings.Contains(out, "table ip kproxy") {
			return fmt.Errorf("no kproxy table:\n%s", out)
		}
		return nil
	})
	if left := iptablesMode("nft").Leftovers(t, c.env.Node); left != "" {
		t.Fatalf("kube-proxy's iptables rules left after kproxy started in nftables mode:\n%s", left)
	}
	// Now only kproxy's nftables rules can answer.
	c.askUntilAll(c.client, "10.96.0.10:80", c.names(c.backends...))
}

// Starting in iptables mode removes the nftables mode's tables: kube-proxy's
// ("ip kube-proxy", "ip6 kube-proxy") and a previous kproxy's ("ip kproxy").
func TestIptablesStartRemovesNftablesTables(t *testing.T) {
	netns.RequireRoot(t)
	m := iptablesMode("nft")
	c := newCluster(t, m, 1)
	old := "table ip kube-proxy {\n chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; }\n}\n" +
		"table ip6 kube-proxy {\n chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; }\n}\n" +
		"table ip kproxy {\n chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; }\n}\n"
	runOnFile(t, c.env.Node, old, "nft", "-f")
	c.apply("web", service{Name: "web", ClusterIP: "10.96.0.10", Port: 80, Endpoints: c.backends}.manifest())
	c.start()
	c.askUntilAll(c.client, "10.96.0.10:80", c.names(c.backends...))
	// The cleanup runs before the first sync, so it is done once traffic flows.
	out := c.env.Node.MustRun(t, "nft", "list", "tables")
	if strings.Contains(out, "kube-proxy") || strings.Contains(out, "kproxy") {
		t.Fatalf("nftables mode tables left after kproxy started in iptables mode:\n%s", out)
	}
}

// docs/migration.md's way back: kproxy exits leaving its rules serving (as kube-proxy
// does), in kube-proxy's chain names, so kube-proxy in the same mode takes over in
// place; `kproxy --cleanup` then leaves nothing for kube-proxy in another mode.
func TestStopLeavesKubeProxyLayoutServing(t *testing.T) {
	netns.RequireRoot(t)
	m := iptablesMode("nft")
	c := newCluster(t, m, 2)
	c.apply("web", service{Name: "web", ClusterIP: "10.96.0.10", Port: 80, Endpoints: c.backends}.manifest())
	c.start()
	c.askUntilAll(c.client, "10.96.0.10:80", c.names(c.backends...))
	c.stop()
	c.askUntilAll(c.client, "10.96.0.10:80", c.names(c.backends...))
	saved := chainsIn(t, c.env.Node, "nft")
	want := []string{":" + kubeProxyChain("KUBE-SVC-", "default/web:p", "tcp") + " "}
	for _, b := range c.backends {
		want = append(want, ":"+kubeProxyChain("KUBE-SEP-", "default/web:p", "tcp", fmt.Sprintf("%s:%d", b.IP, backendPort))+" ")
	}
	for _, w := range want {
		if !strings.Contains(saved, w) {
			t.Errorf("chain %s not in kube-proxy's name after kproxy stopped:\n%s", strings.Trim(w, ": "), saved)
		}
	}
	c.runKproxy("--cleanup")
	if left := m.Leftovers(t, c.env.Node); left != "" {
		t.Fatalf("after --cleanup:\n%s", left)
	}
}

// Starting in nftables mode removes kube-proxy's nftables tables (kproxy writes its
// own "kproxy" tables, so kube-proxy's would go on answering with stale rules), and
// a kproxy restart keeps its own table: no connection fails across it.
func TestNftablesStartRemovesKubeProxyTablesAndKeepsItsOwn(t *testing.T) {
	netns.RequireRoot(t)
	c := newCluster(t, nftablesMode(), 2)
	old := "table ip kube-proxy {\n chain filter-input { type filter hook input priority -110; policy accept; }\n}\n" +
		"table ip6 kube-proxy {\n chain filter-input { type filter hook input priority -110; policy accept; }\n}\n"
	runOnFile(t, c.env.Node, old, "nft", "-f")
	c.apply("web", service{Name: "web", ClusterIP: "10.96.0.10", Port: 80, Endpoints: c.backends}.manifest())
	c.start()
	c.askUntilAll(c.client, "10.96.0.10:80", c.names(c.backends...))
	if out := c.env.Node.MustRun(t, "nft", "list", "tables"); strings.Contains(out, "kube-proxy") {
		t.Fatalf("kube-proxy's tables left after kproxy started in nftables mode:\n%s", out)
	}
	p := startProber(c.client, "10.96.0.10:80")
	c.stop()
	c.start()
	time.Sleep(2 * time.Second)
	if ok, failed, firstErr := p.finish(); failed > 0 || ok < 10 {
		t.Fatalf("across a kproxy restart: %d connections ok, %d failed (first: %v)", ok, failed, firstErr)
	}
}

// `kproxy --cleanup` removes kube-proxy's nftables tables as well as kproxy's, as
// `kube-proxy --cleanup` does, and leaves other programs' tables alone.
func TestCleanupFlagRemovesKubeProxyNftablesTables(t *testing.T) {
	netns.RequireRoot(t)
	c := newCluster(t, nftablesMode(), 0)
	tables := "table ip kube-proxy {\n chain filter-input { type filter hook input priority -110; policy accept; }\n}\n" +
		"table ip6 kube-proxy {\n chain filter-input { type filter hook input priority -110; policy accept; }\n}\n" +
		"table ip kproxy {\n chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; }\n}\n" +
		"table inet other-firewall {\n chain input { type filter hook input priority 0; policy accept; }\n}\n"
	runOnFile(t, c.env.Node, tables, "nft", "-f")
	c.runKproxy("--cleanup")
	out := c.env.Node.MustRun(t, "nft", "list", "tables")
	if strings.Contains(out, "kube-proxy") || strings.Contains(out, "kproxy") {
		t.Fatalf("tables left after kproxy --cleanup:\n%s", out)
	}
	if !strings.Contains(out, "table inet other-firewall") {
		t.Fatalf("kproxy --cleanup removed another program's table:\n%s", out)
	}
}
