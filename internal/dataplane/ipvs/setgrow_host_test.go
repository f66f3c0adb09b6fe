//go:build linux

package ipvs

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakeconntrack"
	"kproxy.dev/kproxy/internal/testing/fakeipvs"
	"kproxy.dev/kproxy/internal/testing/netns"
)

// TestSetGrowsPast65536EntriesUnderLiveTraffic runs the proxier with the real
// ipset and iptables of a private namespace (IPVS and kube-ipvs0 are fakes: the
// host has neither) and grows KUBE-CLUSTER-IP and KUBE-IPVS-IPS from kube-proxy's
// maxelem 65,536 to 262,144 by an incremental sync from 30,000 to 70,000
// ClusterIP Services, while a client keeps opening connections to an address in
// KUBE-CLUSTER-IP. The KUBE-SERVICES rule matching that set masquerades them, so
// the backend sees the node's address; a connection made while the set was
// missing, empty or short of the entry would arrive with the client's address.
func TestSetGrowsPast65536EntriesUnderLiveTraffic(t *testing.T) {
	env := netns.New(t, "ipvsgrow")
	be := env.AddBackend("web")
	be.ServeClientAddr(t, 8080)
	cl := env.AddClient("cl")
	target := netip.AddrPortFrom(be.IP, 8080).String()
	ask := func() (string, error) {
		c, err := cl.Dial("tcp4", target, 2*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		return netns.ReadLine(c, 2*time.Second)
	}
	if src, err := ask(); err != nil || src != cl.IP.String() {
		t.Fatalf("before any rule the backend sees %q (%v), want the client's %s", src, err, cl.IP)
	}

	node := fakeipvs.NewNode()
	p := newProxier(Kernel{
		IPVS: node.IPVS, Links: node.Links, IPSet: execIPSet{}, Iptables: execIptables{}, Sysctl: node.Sysctl,
		LocalAddrs: func() ([]netip.Addr, error) { return []netip.Addr{be.NodeIP, cl.NodeIP}, nil },
	}, proxierOptions{ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}, GracefulInterval: -1})
	core := dataplane.NewCore(p, dataplane.CoreOptions{Conntrack: &fakeconntrack.Table{}})
	apply := func(snap *state.Snapshot, cs state.ChangeSet) (st dataplane.SyncStats) {
		t.Helper()
		if err := env.Node.Do(func() (err error) {
			st, err = core.Sync(context.Background(), snap, cs)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return st
	}
	header := func(set string) (maxElem, entries, refs string) {
		out := env.Node.MustRun(t, "ipset", "list", "-t", set)
		get := func(re string) string {
			if m := regexp.MustCompile(re).FindStringSubmatch(out); m != nil {
				return m[1]
			}
			return ""
		}
		return get(`maxelem (\d+)`), get(`Number of entries: (\d+)`), get(`References: (\d+)`)
	}

	// 30,000 Services: sets as kube-proxy's (maxelem 65,536), one of them on
	// the backend's address.
	web := clusterIP("web", be.IP.String(), 8080, v1.ProtocolTCP)
	empty := &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{web.Name: web}, EndpointMap: map[state.ServicePortName][]state.Endpoint{}}
	snap, _ := withClusterIPs(empty, 1, 0, 29999)
	apply(snap, state.ChangeSet{})
	for _, set := range []string{setClusterIP, setIPVSIPs} {
		if m, n, _ := header(set); m != "65536" || n != "30000" {
			t.Fatalf("%s after 30,000 Services: maxelem %s, %s entries; want 65536 and 30000", set, m, n)
		}
	}
	if src, err := ask(); err != nil || src != be.NodeIP.String() {
		t.Fatalf("the backend sees %q (%v), want the node's %s: KUBE-CLUSTER-IP must match", src, err, be.NodeIP)
	}

	var probes, bad atomic.Int64
	var firstBad atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			src, err := ask()
			probes.Add(1)
			if err != nil || src != be.NodeIP.String() {
				bad.Add(1)
				firstBad.CompareAndSwap(nil, fmt.Sprintf("%q (%v)", src, err))
			}
		}
	}()
	before := probes.Load()
	snap2, cs := withClusterIPs(snap, 2, 29999, 69999)
	st := apply(snap2, cs)
	during := probes.Load() - before
	close(stop)
	wg.Wait()
	if st.Full {
		t.Error("adding 40,000 Services must be an incremental sync")
	}
	if bad.Load() > 0 {
		t.Errorf("%d of %d connections arrived unmasqueraded or failed while the sets grew; first: %v", bad.Load(), probes.Load(), firstBad.Load())
	}
	if during == 0 {
		t.Error("no connection was made during the growing sync")
	}
	for _, set := range []string{setClusterIP, setIPVSIPs} {
		m, n, refs := header(set)
		if m != "262144" || n != "70000" || refs == "0" {
			t.Errorf("%s after 70,000 Services: maxelem %s, %s entries, %s references; want 262144, 70000, and the rules' references", set, m, n, refs)
		}
	}
	if names := env.Node.MustRun(t, "ipset", "list", "-n"); strings.Contains(names, growTempSet) {
		t.Errorf("%s left behind:\n%s", growTempSet, names)
	}
	if _, err := env.Node.Run("ipset", "test", setClusterIP, "10.97.29.249,tcp:80"); err != nil {
		t.Errorf("the last Service's entry: %v", err)
	}
	t.Logf("%d connections during the growing sync, all masqueraded", during)

	// A restart: a new proxier's full sync keeps the grown sets as they are.
	p2 := newProxier(p.k, p.o)
	core2 := dataplane.NewCore(p2, dataplane.CoreOptions{Conntrack: &fakeconntrack.Table{}})
	if err := env.Node.Do(func() error { _, err := core2.Sync(context.Background(), snap2, state.ChangeSet{}); return err }); err != nil {
		t.Fatalf("full sync after a restart: %v", err)
	}
	if m, n, _ := header(setClusterIP); m != "262144" || n != "70000" {
		t.Errorf("after a restart: maxelem %s, %s entries", m, n)
	}
}
