//go:build linux

package nftables

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakenft"
)

// checks returns how many self-checks ended with each result.
func checks(p *Proxier) map[string]int {
	out := map[string]int{}
	for _, r := range []string{"unchanged", "other-tables", "verified", "damaged"} {
		out[r] = int(testutil.ToFloat64(p.metrics.checks.WithLabelValues(r)))
	}
	return out
}

// damagedNow runs one self-check and says what it found and how.
func damagedNow(t *testing.T, p *Proxier) (bool, string) {
	t.Helper()
	before := checks(p)
	bad, err := p.Damaged(context.Background())
	if err != nil {
		t.Fatalf("Damaged: %v", err)
	}
	for r, n := range checks(p) {
		if n == before[r]+1 {
			return bad, r
		}
	}
	t.Fatalf("no check result counted: %v", checks(p))
	return bad, ""
}

// digestSnapshot has a Service on the shared path and one with chains of its own
// (session affinity: service-…, endpoint-… chains and affinity sets) and an rr
// Service (a select map).
func digestSnapshot(eps ...string) *state.Snapshot {
	var list []state.Endpoint
	for _, a := range eps {
		list = append(list, ep(a, 8080))
	}
	// web and rr both claim external IP 192.0.2.9 port 80: one map element, with
	// whichever owner's verdict came first.
	return snapshotOf(map[*spec][]state.Endpoint{
		{name: "web", clusterIP: "10.96.0.10", port: 80, nodePort: 30080, external: []string{"192.0.2.9"}}: list,
		{name: "sticky", clusterIP: "10.96.0.17", port: 80, affinity: 600_000_000_000}:                     list,
		{name: "rr", clusterIP: "10.96.0.12", port: 80, scheduler: "rr", external: []string{"192.0.2.9"}}:  list,
	})
}

// ownChain names the service's first (last with last set) chain named prefix….
func ownChain(t *testing.T, p *Proxier, service, prefix string, last ...bool) string {
	t.Helper()
	var found []string
	for n, fr := range p.tables[0].applied.services {
		if n.Name != service {
			continue
		}
		for _, c := range fr.chains {
			if strings.HasPrefix(c.name, prefix) {
				found = append(found, c.name)
			}
		}
	}
	if len(found) == 0 {
		t.Fatalf("no %s chain for %s", prefix, service)
	}
	if len(last) > 0 {
		return found[len(found)-1]
	}
	return found[0]
}

// On the fake kernel: an unchanged generation costs no read; a foreign commit
// elsewhere is read back and found intact (also after partial syncs); every kind
// of damage to kproxy's table is found, and the full sync it causes re-arms the
// gate.
func TestSelfCheckGateAndDigest(t *testing.T) {
	k := fakenft.New()
	p := fakeProxier(t, k)
	snap := digestSnapshot("10.244.1.2", "10.244.1.3")
	syncOn(t, p, snap)
	if bad, how := damagedNow(t, p.Proxier); bad || how != "unchanged" {
		t.Fatalf("after a full sync: damaged %v by %s, want an unchanged generation", bad, how)
	}
	other := func(c *fakenft.Conn) {
		c.AddTable(&nftables.Table{Name: "cni", Family: nftables.TableFamilyIPv4})
	}
	commit(t, k, other)
	if bad, how := damagedNow(t, p.Proxier); bad || how != "verified" {
		t.Fatalf("after another table's commit: damaged %v by %s, want verified intact", bad, how)
	}
	if bad, how := damagedNow(t, p.Proxier); bad || how != "unchanged" {
		t.Fatalf("the verified generation is not the gate's: %v by %s", bad, how)
	}
	// Partial syncs keep the gate, and leave what the digest expects.
	next := digestSnapshot("10.244.1.2", "10.244.1.4", "10.244.1.5")
	var names []state.ServicePortName
	for n := range next.ServiceMap {
		names = append(names, n)
	}
	if syncOn(t, p, next, names...) {
		t.Fatal("the endpoint change was synced fully")
	}
	if bad, how := damagedNow(t, p.Proxier); bad || how != "unchanged" {
		t.Fatalf("after a partial sync: damaged %v by %s", bad, how)
	}
	commit(t, k, other)
	if bad, how := damagedNow(t, p.Proxier); bad || how != "verified" {
		t.Fatalf("after a partial sync and a foreign commit: damaged %v by %s", bad, how)
	}

	tbl := &nftables.Table{Name: tableName, Family: nftables.TableFamilyIPv4}
	fresh := fakenft.New()
	syncOn(t, fakeProxier(t, fresh), next)
	want := fresh.Dump(nftables.TableFamilyIPv4, tableName)
	svc := ownChain(t, p.Proxier, "sticky", "service-")
	endpoint := ownChain(t, p.Proxier, "sticky", "endpoint-")
	for _, tc := range []struct {
		name   string
		damage func(c *fakenft.Conn)
	}{
		{"flushed per-Service chain", func(c *fakenft.Conn) { c.FlushChain(&nftables.Chain{Name: svc, Table: tbl}) }},
		{"rule dropped from an endpoint chain", func(c *fakenft.Conn) {
			rules, _ := c.GetRules(tbl, &nftables.Chain{Name: endpoint, Table: tbl})
			c.FlushChain(&nftables.Chain{Name: endpoint, Table: tbl})
			for _, r := range rules[:len(rules)-1] {
				c.AddRule(r)
			}
		}},
		{"rule added to a per-Service chain", func(c *fakenft.Conn) {
			rules, _ := c.GetRules(tbl, &nftables.Chain{Name: svc, Table: tbl})
			c.AddRule(rules[0])
		}},
		{"rule replaced by another of the same length", func(c *fakenft.Conn) {
			rules, _ := c.GetRules(tbl, &nftables.Chain{Name: endpoint, Table: tbl})
			last, _ := c.GetRules(tbl, &nftables.Chain{Name: ownChain(t, p.Proxier, "rr", "endpoint-", true), Table: tbl})
			c.FlushChain(&nftables.Chain{Name: endpoint, Table: tbl})
			for _, r := range rules[:len(rules)-1] {
				c.AddRule(r)
			}
			r := *last[len(last)-1] // another endpoint's DNAT
			r.Chain = &nftables.Chain{Name: endpoint, Table: tbl}
			c.AddRule(&r)
		}},
		{"shared element given no owner's verdict", func(c *fakenft.Conn) {
			set := &nftables.Set{Table: tbl, Name: mapServiceIPs}
			elems, _ := c.GetSetElements(set)
			for _, e := range elems {
				if bytes.HasPrefix(e.Key, []byte{192, 0, 2, 9}) { // the external IP both claim
					_ = c.SetDeleteElements(set, []nftables.SetElement{e})
					e.VerdictData = &expr.Verdict{Kind: expr.VerdictDrop}
					_ = c.SetAddElements(set, []nftables.SetElement{e})
				}
			}
		}},
		{"shared-path NodePort moved to another endpoint count's set", func(c *fakenft.Conn) {
			from := &nftables.Set{Table: tbl, Name: nodePortPickSet(3)}
			elems, _ := c.GetSetElements(from)
			_ = c.SetDeleteElements(from, elems)
			_ = c.SetAddElements(&nftables.Set{Table: tbl, Name: nodePortPickSet(2)}, elems)
		}},
		{"shared-path ClusterIP deleted from the gate set", func(c *fakenft.Conn) {
			set := &nftables.Set{Table: tbl, Name: setPickIPs}
			elems, _ := c.GetSetElements(set)
			_ = c.SetDeleteElements(set, elems)
		}},
		{"chain deleted and another added", func(c *fakenft.Conn) {
			c.FlushChain(&nftables.Chain{Name: svc, Table: tbl})
			c.AddChain(&nftables.Chain{Name: "intruder", Table: tbl})
			c.AddRule(&nftables.Rule{Table: tbl, Chain: &nftables.Chain{Name: "intruder"}})
		}},
		{"map element changed, count kept", func(c *fakenft.Conn) {
			set := &nftables.Set{Table: tbl, Name: mapServiceIPs}
			elems, _ := c.GetSetElements(set)
			e := elems[0]
			for _, x := range elems {
				if bytes.HasPrefix(x.Key, []byte{10, 96, 0, 10}) { // web's ClusterIP
					e = x
				}
			}
			_ = c.SetDeleteElements(set, []nftables.SetElement{e})
			v := *e.VerdictData
			if v.Chain = svc; e.VerdictData.Chain == svc {
				v.Chain = ownChain(t, p.Proxier, "rr", "service-")
			}
			e.VerdictData = &v
			_ = c.SetAddElements(set, []nftables.SetElement{e})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			syncOn(t, p, next)
			if bad, how := damagedNow(t, p.Proxier); bad || how != "unchanged" {
				t.Fatalf("before the damage: %v by %s", bad, how)
			}
			before := k.Dump(nftables.TableFamilyIPv4, tableName)
			commit(t, k, tc.damage)
			if k.Dump(nftables.TableFamilyIPv4, tableName) == before {
				t.Fatal("the damage changed nothing: the test proves nothing")
			}
			if bad, how := damagedNow(t, p.Proxier); !bad || how != "damaged" {
				t.Fatalf("damage not found: %v by %s", bad, how)
			}
			if !syncOn(t, p, next) {
				t.Fatal("the repair was not a full sync")
			}
			if got := k.Dump(nftables.TableFamilyIPv4, tableName); got != want {
				t.Fatalf("not repaired:\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// commit runs one foreign transaction on the fake kernel.
func commit(t *testing.T, k *fakenft.Kernel, ops func(c *fakenft.Conn)) {
	t.Helper()
	c := k.Conn()
	ops(c)
	if err := c.Flush(); err != nil {
		t.Fatalf("foreign transaction: %v", err)
	}
}
