//go:build linux

package fakeipvs

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	mobyipvs "github.com/moby/ipvs"
)

var ctx = context.Background()

func TestIPSetRestoreAppliesLineByLine(t *testing.T) {
	var s IPSet
	in := "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536 comment\n" +
		"create KUBE-NODE-PORT-TCP bitmap:port range 0-65535 comment\n" +
		"add KUBE-CLUSTER-IP 10.96.0.1,tcp:80\n" +
		"add KUBE-CLUSTER-IP 10.96.0.1,tcp:80\n" + // -exist: a duplicate is fine
		"add KUBE-NODE-PORT-TCP 30080\n" +
		"del KUBE-CLUSTER-IP 10.96.0.9,tcp:80\n" // -exist: so is a missing entry
	if err := s.Restore(ctx, in); err != nil {
		t.Fatal(err)
	}
	// Re-creating with the same type is fine; the entries stay.
	if err := s.Restore(ctx, "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536 comment\n"); err != nil || !s.Has("KUBE-CLUSTER-IP", "10.96.0.1,tcp:80") {
		t.Fatalf("re-create: %v", err)
	}
	saved, _ := s.Save(ctx)
	want := "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536 comment\nadd KUBE-CLUSTER-IP 10.96.0.1,tcp:80\n" +
		"create KUBE-NODE-PORT-TCP bitmap:port range 0-65535 comment\nadd KUBE-NODE-PORT-TCP 30080\n"
	if saved != want {
		t.Fatalf("save:\n%s\nwant:\n%s", saved, want)
	}
	for _, bad := range []string{
		"add KUBE-NOPE 10.96.0.1,tcp:80",
		"add KUBE-CLUSTER-IP fd00::1,tcp:80",
		"add KUBE-CLUSTER-IP 10.96.0.1",
		"add KUBE-NODE-PORT-TCP 70000",
		"create KUBE-CLUSTER-IP hash:ip family inet",
	} {
		err := s.Restore(ctx, "add KUBE-CLUSTER-IP 10.96.0.2,udp:53\n"+bad+"\nadd KUBE-CLUSTER-IP 10.96.0.3,udp:53\n")
		if err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: want an error at line 2, got %v", bad, err)
		}
		if !s.Has("KUBE-CLUSTER-IP", "10.96.0.2,udp:53") || s.Has("KUBE-CLUSTER-IP", "10.96.0.3,udp:53") {
			t.Errorf("%q: ipset restore applies the lines before the bad one and none after", bad)
		}
	}
}

// A hash set refuses a new entry past its maxelem, as the kernel does ("Hash is
// full"), re-creating it with another maxelem is refused even with -exist, and
// swap exchanges two sets under their names (so a rule matching one name now
// matches the other set, and the old set can be destroyed under the other name).
func TestIPSetMaxElemAndSwap(t *testing.T) {
	n := NewNode()
	s := n.IPSet
	if err := s.Restore(ctx, "create S hash:ip family inet maxelem 2\nadd S 10.0.0.1\nadd S 10.0.0.2\nadd S 10.0.0.2\n"); err != nil {
		t.Fatalf("two entries and a duplicate fit maxelem 2: %v", err)
	}
	if err := s.Restore(ctx, "add S 10.0.0.3\n"); err == nil || !strings.Contains(err.Error(), "Hash is full") || s.Entries("S") != 2 {
		t.Fatalf("a third entry: %v, %d entries", err, s.Entries("S"))
	}
	if err := s.Restore(ctx, "create S hash:ip family inet maxelem 4\n"); err == nil {
		t.Fatal("re-creating S with another maxelem must fail")
	}
	if err := n.Iptables.Restore(ctx, false, "*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -m set --match-set S dst -j ACCEPT\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	grow := "create T hash:ip family inet maxelem 4\nadd T 10.0.0.1\nadd T 10.0.0.2\nadd T 10.0.0.3\nswap T S\ndestroy T\n"
	if err := s.Restore(ctx, grow); err != nil {
		t.Fatal(err)
	}
	if s.MaxElem("S") != 4 || s.Entries("S") != 3 || !s.Has("S", "10.0.0.3") || s.Exists("T") {
		t.Fatalf("after the swap S has maxelem %d and %d entries, T exists %v", s.MaxElem("S"), s.Entries("S"), s.Exists("T"))
	}
	if err := s.Restore(ctx, "create U hash:ip,port family inet\nswap U S\n"); err == nil {
		t.Fatal("swapping sets of different types must fail")
	}
	s.Fail = func(f []string) error {
		if f[0] == "create" && f[1] == "V" {
			return fmt.Errorf("Kernel error received: Cannot allocate memory")
		}
		return nil
	}
	if err := s.Restore(ctx, "create W hash:ip\ncreate V hash:ip\n"); err == nil || !strings.Contains(err.Error(), "line 2: Kernel error") || !s.Exists("W") || s.Exists("V") {
		t.Fatalf("Fail: %v", err)
	}
}

func TestNodeRefusesToDestroyASetInUse(t *testing.T) {
	n := NewNode()
	if err := n.IPSet.Restore(ctx, "create KUBE-CLUSTER-IP hash:ip,port family inet\n"); err != nil {
		t.Fatal(err)
	}
	if err := n.Iptables.Restore(ctx, false, "*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	if err := n.IPSet.Destroy(ctx, []string{"KUBE-CLUSTER-IP", "KUBE-ABSENT"}); err == nil || !n.IPSet.Exists("KUBE-CLUSTER-IP") {
		t.Fatalf("destroyed a set a rule uses: %v", err)
	}
	if err := n.Iptables.Restore(ctx, false, "*nat\n:KUBE-SERVICES - [0:0]\n-X KUBE-SERVICES\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	if err := n.IPSet.Destroy(ctx, []string{"KUBE-CLUSTER-IP"}); err != nil || n.IPSet.Len() != 0 {
		t.Fatalf("destroy: %v", err)
	}
}

func TestIptablesEnsureAndDeleteRule(t *testing.T) {
	ipt := NewIptables()
	if err := ipt.Restore(ctx, true, "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	args := []string{"-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"}
	for range 2 {
		if err := ipt.EnsureRule(ctx, true, "nat", "PREROUTING", args); err != nil {
			t.Fatal(err)
		}
	}
	if got := ipt.V6.Rules("nat", "PREROUTING"); len(got) != 1 || ipt.V4.Rules("nat", "PREROUTING") != nil {
		t.Fatalf("v6 PREROUTING %q; v4 must be untouched", got)
	}
	saved, _ := ipt.Save(ctx, true)
	if !strings.Contains(saved, `-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`) {
		t.Fatalf("save:\n%s", saved)
	}
	if err := ipt.DeleteRule(ctx, true, "nat", "PREROUTING", args); err != nil || len(ipt.V6.Rules("nat", "PREROUTING")) != 0 {
		t.Fatalf("delete: %v", err)
	}
	if err := ipt.EnsureRule(ctx, false, "nat", "PREROUTING", args); err == nil {
		t.Fatal("a jump to a chain the family lacks must fail")
	}
}

func svc(addr string, port uint16) *mobyipvs.Service {
	return &mobyipvs.Service{Address: net.ParseIP(addr), Port: port, Protocol: syscall.IPPROTO_TCP, AddressFamily: syscall.AF_INET, SchedName: "rr"}
}

func dest(addr string, port uint16, w int) *mobyipvs.Destination {
	return &mobyipvs.Destination{Address: net.ParseIP(addr), Port: port, Weight: w, AddressFamily: syscall.AF_INET}
}

func TestIPVSKeepsServersAndRefusesWhatTheKernelRefuses(t *testing.T) {
	h := NewIPVS()
	s := svc("10.96.0.1", 80)
	if err := h.NewService(s); err != nil {
		t.Fatal(err)
	}
	if err := h.NewService(s); err == nil {
		t.Fatal("a duplicate virtual server must fail")
	}
	if err := h.NewDestination(s, dest("10.244.1.2", 8080, 1)); err != nil {
		t.Fatal(err)
	}
	if err := h.UpdateDestination(s, dest("10.244.1.2", 8080, 3)); err != nil {
		t.Fatal(err)
	}
	if err := h.DelDestination(s, dest("10.244.1.9", 8080, 1)); err == nil {
		t.Fatal("deleting an absent real server must fail")
	}
	if got := h.Dump(); got != "TCP/10.96.0.1:80 rr flags 0x0 timeout 0\n  -> 10.244.1.2:8080 weight 3 fwd 0\n" {
		t.Fatalf("dump:\n%s", got)
	}
	listed, _ := h.GetServices()
	if len(listed) != 1 || listed[0].Flags&flagHashed == 0 {
		t.Fatalf("listed %+v", listed)
	}
	h.Refuse("sed")
	if err := h.NewService(&mobyipvs.Service{Address: net.ParseIP("10.96.0.2"), Port: 80, Protocol: 6, AddressFamily: syscall.AF_INET, SchedName: "sed"}); err == nil {
		t.Fatal("a refused scheduler must fail")
	}
	if err := h.DelService(s); err != nil || h.Len() != 0 || h.Service(KeyOf(s)) != nil {
		t.Fatalf("delete: %v", err)
	}
	var l Links
	if err := l.AddAddr("kube-ipvs0", netip.MustParseAddr("10.96.0.1")); err == nil {
		t.Fatal("an address on a missing link must fail")
	}
	_ = l.EnsureDummy("kube-ipvs0")
	_ = l.AddAddr("kube-ipvs0", netip.MustParseAddr("10.96.0.1"))
	if !l.Has("kube-ipvs0", netip.MustParseAddr("10.96.0.1")) || l.Writes() != 1 {
		t.Fatal("address not added")
	}
	_ = l.DeleteLink("kube-ipvs0")
	if addrs, _ := l.Addrs("kube-ipvs0"); len(addrs) != 0 || l.Exists("kube-ipvs0") {
		t.Fatal("deleting the link must drop its addresses")
	}
}
