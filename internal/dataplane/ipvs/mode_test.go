//go:build linux

package ipvs

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	mobyipvs "github.com/moby/ipvs"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakeipvs"
)

func TestPreflightErrorNamesModulesAndFix(t *testing.T) {
	err := &preflightError{Missing: []missing{
		{"ip_vs", "IPVS (generic netlink family \"IPVS\" not found)"},
		{"ip_vs_wrr", "IPVS scheduler \"wrr\""},
		{"dummy", "dummy network devices"},
		{"", "the ipset tool (install the ipset package)"},
	}}
	msg := err.Error()
	for _, want := range []string{"modprobe ip_vs\n", "modprobe ip_vs_wrr\n", "modprobe dummy\n", "ipset package", "--proxy-mode"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	bit := int32(40)
	for field, c := range map[string]*kpconfig.KubeProxyConfiguration{
		"ipvs.scheduler":         {IPVS: kpconfig.KubeProxyIPVSConfiguration{Scheduler: "fastest"}},
		"ipvs.excludeCIDRs[0]":   {IPVS: kpconfig.KubeProxyIPVSConfiguration{ExcludeCIDRs: []string{"10.0.0.0/33"}}},
		"clusterCIDR[1]":         {ClusterCIDR: "10.0.0.0/8,nope"},
		"iptables.masqueradeBit": {IPTables: kpconfig.KubeProxyIPTablesConfiguration{MasqueradeBit: &bit}},
		"nodePortAddresses[0]":   {NodePortAddresses: []string{"everything"}},
	} {
		_, err := optionsFromConfig(dataplane.Options{Config: c})
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: error %v does not name the field", field, err)
		}
	}
}

func TestSysctlsAndTimeouts(t *testing.T) {
	s := fakeipvs.NewSysctl(map[string]string{"net/ipv4/ip_forward": "1"})
	if err := setSysctls(s, true); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"net/ipv4/vs/conntrack": "1", "net/ipv4/vs/expire_nodest_conn": "1", "net/ipv4/vs/expire_quiescent_template": "1",
		"net/ipv4/conf/all/arp_ignore": "1", "net/ipv4/conf/all/arp_announce": "2",
	} {
		if got, _ := s.Get(k); got != v {
			t.Errorf("sysctl %s = %q, want %q", k, got, v)
		}
	}
	h := fakeipvs.NewIPVS()
	_ = h.SetConfig(&mobyipvs.Config{TimeoutTCP: 900 * time.Second, TimeoutTCPFin: 120 * time.Second, TimeoutUDP: 300 * time.Second})
	err := setTimeouts(h, kpconfig.KubeProxyIPVSConfiguration{TCPTimeout: metav1.Duration{Duration: time.Hour}, UDPTimeout: metav1.Duration{Duration: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	want := mobyipvs.Config{TimeoutTCP: time.Hour, TimeoutTCPFin: 120 * time.Second, TimeoutUDP: 30 * time.Second}
	if got, _ := h.GetConfig(); *got != want {
		t.Fatalf("timeouts %+v, want %+v (0 keeps the kernel's value)", *got, want)
	}
}

func TestCleanupRemovesEverything(t *testing.T) {
	f := newFixture(t, proxierOptions{ExcludeCIDRs: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16")}})
	sp := clusterIP("web", "10.96.0.1", 80, v1.ProtocolTCP)
	f.sync(f.set(sp.Name, sp, ep("10.1.0.1:80", 1)))
	_ = f.ipvs.NewService(toService(&virtualServer{Key: key("172.30.0.1:80", protoTCP), Scheduler: "rr"}))
	if f.jumpRulesIn(false) == 0 || f.ipset.Len() == 0 {
		t.Fatal("sync created no jump rules or sets")
	}
	if err := f.p.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.ipvs.Len() != 1 || f.links.Exists(DummyLink) || f.jumpRulesIn(false) != 0 || f.ipset.Len() != 0 {
		t.Fatalf("left behind: %d virtual servers (want the excluded one), link %v, jump rules %d, sets %d",
			f.ipvs.Len(), f.links.Exists(DummyLink), f.jumpRulesIn(false), f.ipset.Len())
	}
	for _, table := range []string{"nat", "filter"} {
		for _, c := range f.ipt.V4.Chains(table) {
			if strings.HasPrefix(c, "KUBE-") {
				t.Errorf("chain %s/%s left behind", table, c)
			}
		}
	}
	// A cleanup of nothing succeeds.
	if err := cleanup(context.Background(), Kernel{}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestListShowsKernelTable(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	sp := clusterIP("web", "10.96.0.1", 80, v1.ProtocolTCP)
	sp.Scheduler, sp.SchedulerFlags = "mh", []string{"mh-port"}
	sp.AffinityTimeout = 30 * time.Second
	f.sync(f.set(sp.Name, sp, ep("10.1.0.1:80", 2)))
	f.ipvs.SetConns(fakeipvs.Key(key("10.96.0.1:80", protoTCP)), netip.MustParseAddrPort("10.1.0.1:80"), 3, 1)
	rows, err := f.p.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	r := rows[0]
	if r.Service != "ns/web:p" || r.Address != "10.96.0.1:80" || r.Protocol != "TCP" || r.Scheduler != "mh" || r.PersistentSeconds != 30 {
		t.Fatalf("row %+v", r)
	}
	if strings.Join(r.Flags, ",") != "mh-port" {
		t.Fatalf("flags %v", r.Flags)
	}
	rs := r.RealServers[0]
	if rs.Address != "10.1.0.1:80" || rs.Forward != "Masq" || rs.Weight != 2 || rs.ActiveConn != 3 || rs.InActConn != 1 || rs.Stats == nil {
		t.Fatalf("real server %+v", rs)
	}
}

func TestRulesMatchTheSets(t *testing.T) {
	v4 := renderRules(rulesOptions{ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}, MasqueradeBit: 14})
	for _, want := range []string{
		"-A KUBE-SERVICES ! -s 10.244.0.0/16 -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ",
		"-A KUBE-POSTROUTING -m comment --comment \"hairpin: endpoint to itself\" -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE",
		"-A KUBE-NODE-PORT -p tcp -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ",
		"-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
		"-A KUBE-SOURCE-RANGES-FIREWALL -m set --match-set KUBE-LOAD-BALANCER-SOURCE-CIDR dst,dst,src -j RETURN",
		"-A KUBE-PROXY-FIREWALL -m conntrack --ctstate NEW -m set --match-set KUBE-EXTERNAL-NO-LOCAL dst,dst -j KUBE-EXTERNAL-NO-LOCAL",
		"-A KUBE-EXTERNAL-NO-LOCAL -s 10.244.0.0/16 -m comment --comment \"pods short-circuit to cluster-wide endpoints\" -j RETURN",
		"-A KUBE-NODE-PORT -p tcp -m addrtype --src-type LOCAL -m set --match-set KUBE-NODE-PORT-LOCAL-TCP dst -j KUBE-MARK-MASQ",
	} {
		if !strings.Contains(v4, want+"\n") {
			t.Errorf("rules lack %q", want)
		}
	}
	v6 := renderRules(rulesOptions{V6: true, MasqueradeAll: true, MasqueradeBit: 14})
	if !strings.Contains(v6, "--match-set KUBE6-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ") || strings.Contains(v6, " KUBE-CLUSTER-IP ") {
		t.Errorf("IPv6 rules must use the KUBE6- sets:\n%s", v6)
	}
	// No IPv6 cluster CIDR: only the node is short-circuited, pods are not told
	// apart from outside clients.
	if strings.Contains(v6, "-A KUBE-EXTERNAL-NO-LOCAL -s ") || !strings.Contains(v6, "--match-set KUBE6-EXTERNAL-NO-LOCAL dst,dst -j KUBE-EXTERNAL-NO-LOCAL") ||
		!strings.Contains(v6, "-A KUBE-EXTERNAL-NO-LOCAL -m addrtype --src-type LOCAL") {
		t.Errorf("IPv6 KUBE-EXTERNAL-NO-LOCAL:\n%s", v6)
	}
	if !strings.Contains(renderCreate(true, kubeProxySize), "create KUBE6-CLUSTER-IP hash:ip,port family inet6") {
		t.Error("IPv6 sets must be inet6")
	}
	for _, n := range allSetNames() {
		if len(n) > 31 {
			t.Errorf("ipset name %s is longer than ipset's 31 characters", n)
		}
	}
}

func TestJumpRulesCheckedOnceAndIPv6OnlyWhenUsed(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	sp := clusterIP("web", "10.96.0.1", 80, v1.ProtocolTCP)
	f.sync(f.set(sp.Name, sp, ep("10.1.0.1:80", 1)))
	if n := f.jumpRulesIn(false); n != len(jumpRules) {
		t.Fatalf("%d jump rules present, want %d", n, len(jumpRules))
	}
	// Absent from iptables-save, they are inserted by the restore of the rules,
	// not by `iptables -C`/`-I` each.
	restores := len(f.ipt.V4.Restores())
	if f.ipt.EnsureCalls() != 0 || restores != 1 || strings.Count(f.ipt.V4.LastInput(), "\n-I ") != len(jumpRules) {
		t.Fatalf("%d iptables -C/-I calls and %d restores on a cold sync, want 0 and 1 with the rules and %d jumps:\n%s",
			f.ipt.EnsureCalls(), restores, len(jumpRules), f.ipt.V4.LastInput())
	}
	if f.jumpRulesIn(true) != 0 || f.ipset.Exists("KUBE6-CLUSTER-IP") || len(f.ipt.V6.Restores()) != 0 {
		t.Fatal("an IPv4-only node must not get IPv6 rules or sets")
	}
	f.p.needFull = true
	f.sync(state.ChangeSet{})
	for _, r := range f.ipt.V4.Restores()[restores:] {
		if strings.Contains(r.Input, "\n-I ") {
			t.Errorf("a full sync re-inserted jump rules present in iptables-save:\n%s", r.Input)
		}
	}
	if f.ipt.EnsureCalls() != 0 || f.jumpRulesIn(false) != len(jumpRules) {
		t.Fatalf("a full sync checked jump rules present in iptables-save (%d -C/-I calls)", f.ipt.EnsureCalls())
	}
	v6 := clusterIP("web6", "fd00::10", 80, v1.ProtocolTCP)
	f.sync(f.set(v6.Name, v6, ep("[fd00:1::1]:80", 1)))
	if f.jumpRulesIn(true) != len(jumpRules) || !f.ipset.Has("KUBE6-CLUSTER-IP", "fd00::10,tcp:80") {
		t.Fatal("the first IPv6 Service must bring the IPv6 rules and sets")
	}
	if s := f.vs(key("[fd00::10]:80", protoTCP)); s == nil || s.Netmask != 128 {
		t.Fatalf("IPv6 virtual server %+v", s)
	}
}

// The batched jumps go to the top of their built-in chains, before rules that
// were there, in the same order as inserting them one by one; a jump to our
// chain in another form than ours (here without its comment) is checked with
// -C and gets ours inserted, once.
func TestJumpRulesGoFirstAndOddFormsAreChecked(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	r := f.ipt.V4
	for _, rule := range [][]string{
		{"nat", "-A", "PREROUTING", "-j", "ACCEPT"},
		{"filter", "-A", "INPUT", "-j", "ACCEPT"},
		{"nat", "-N", chainPostrouting},
		{"nat", "-A", "POSTROUTING", "-j", chainPostrouting},
	} {
		if err := r.Exec(rule[0], rule[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	sp := clusterIP("web", "10.96.0.1", 80, v1.ProtocolTCP)
	f.sync(f.set(sp.Name, sp, ep("10.1.0.1:80", 1)))
	if f.jumpRulesIn(false) != len(jumpRules) {
		t.Fatalf("%d of %d jump rules present", f.jumpRulesIn(false), len(jumpRules))
	}
	if f.ipt.EnsureCalls() != 1 {
		t.Errorf("%d -C/-I calls, want 1 (POSTROUTING, which jumps to %s without our comment)", f.ipt.EnsureCalls(), chainPostrouting)
	}
	chain := func(tbl, c string) []string {
		rules, _, err := r.ListChain(context.Background(), tbl, c)
		if err != nil {
			t.Fatal(err)
		}
		return rules
	}
	if got := chain("nat", "PREROUTING"); len(got) != 2 || got[0] != strings.TrimSpace(jumpRules[0].saveLine()) {
		t.Errorf("nat PREROUTING %q: our jump must come first, once", got)
	}
	// One by one, -I puts the last rule of jumpRules for a chain first.
	var want []string
	for _, j := range jumpRules {
		if j.Table == "filter" && j.Chain == "INPUT" {
			want = append([]string{strings.TrimSpace(j.saveLine())}, want...)
		}
	}
	want = append(want, "-A INPUT -j ACCEPT")
	if got := chain("filter", "INPUT"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("filter INPUT:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	f.p.needFull = true
	f.sync(state.ChangeSet{})
	if got := chain("nat", "POSTROUTING"); len(got) != 2 {
		t.Errorf("nat POSTROUTING after a second full sync %q: want ours and the other one", got)
	}
}

// The IPv6 tools are ip6tables*, not "ip6iptables*" (which made every sync of a
// dual-stack node fail on the real kernel).
func TestToolNamesPerFamily(t *testing.T) {
	for _, tc := range []struct {
		v6         bool
		name, want string
	}{
		{false, "iptables-restore", "iptables-restore"},
		{true, "iptables-restore", "ip6tables-restore"},
		{true, "iptables-save", "ip6tables-save"},
		{true, "iptables", "ip6tables"},
	} {
		if got := tool(tc.v6, tc.name); got != tc.want {
			t.Errorf("tool(%v, %q) = %q, want %q", tc.v6, tc.name, got, tc.want)
		}
	}
}
