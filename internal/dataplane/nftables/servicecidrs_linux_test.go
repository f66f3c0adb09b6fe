//go:build linux

package nftables

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	tnetns "kproxy.dev/kproxy/internal/testing/netns"
)

// TestKernelServiceCIDRs: with a ServiceCIDR, a new connection from the node, a pod
// or an outside host to an address inside it that is no ClusterIP is dropped (it
// would otherwise leave the node un-NATed: here the "ep" namespace owns that address
// and would answer), one to a ClusterIP on a port no Service defines is refused at
// once, and the defined port reaches the endpoint. ServiceCIDR and Service changes
// are partial syncs.
func TestKernelServiceCIDRs(t *testing.T) {
	requireRoot(t)
	env := tnetns.New(t, "nft-scidr")
	endpoint := env.AddBackend("ep")
	endpoint.ServeTCP(t, 8080)
	pod, ext := env.AddBackend("pod"), env.AddClient("ext")
	// Un-NATed Service traffic is routed to "ep", which owns the addresses: a leak
	// would be answered.
	env.Node.MustRun(t, "ip", "route", "add", "10.96.0.0/14", "via", endpoint.IP.String())
	for _, a := range []string{"10.96.0.10/32", "10.96.0.99/32"} {
		endpoint.MustRun(t, "ip", "addr", "add", a, "dev", "lo")
	}
	tb := serviceCIDRTestbed(t, env, endpoint, pod, ext)

	web := &spec{name: "web", clusterIP: "10.96.0.10", port: 80}
	snap := snapshotOf(map[*spec][]state.Endpoint{web: {ep(endpoint.IP.String(), 8080)}})
	tb.mustSync(t, snap, state.ChangeSet{})
	// No ServiceCIDR object: nothing is dropped, as in kube-proxy.
	if got, err := env.Node.AskTCP("10.96.0.99:8080", 2*time.Second); err != nil || got != endpoint.Name {
		t.Fatalf("without ServiceCIDRs: %q, %v; want the un-NATed connection to reach %s", got, err, endpoint.Name)
	}

	withCIDRs := *snap
	withCIDRs.ServiceCIDRs = prefixes("10.96.0.0/16", "10.98.0.0/24", "10.98.1.0/24", "10.98.2.0/24")
	st := tb.mustSync(t, &withCIDRs, state.ChangeSet{CIDRsChanged: true})
	if st.Full || st.Written["ip"] != 4 {
		t.Fatalf("ServiceCIDR change: full=%v written=%v; want a partial sync writing two intervals (4 elements)", st.Full, st.Written)
	}
	listing := env.Node.MustRun(t, "nft", "list", "set", "ip", "kproxy", "service-cidrs")
	if !strings.Contains(listing, "10.96.0.0/16") || !strings.Contains(listing, "10.98.0.0-10.98.2.255") {
		t.Fatalf("kernel lists\n%s\nwant 10.96.0.0/16 and 10.98.0.0-10.98.2.255", listing)
	}

	// The periodic check counts the kernel's interval elements (start and end) right.
	if bad, err := tb.p.Damaged(context.Background()); bad || err != nil {
		t.Fatalf("Damaged after the ServiceCIDR sync: %v, %v; want an intact table", bad, err)
	}

	for _, c := range []struct {
		name string
		from *tnetns.NS
	}{{"node", env.Node}, {"pod", pod}, {"outside host", ext}} {
		if got, err := c.from.AskTCP("10.96.0.10:80", 2*time.Second); err != nil || got != endpoint.Name {
			t.Errorf("%s to the defined port: %q, %v; want %s", c.name, got, err, endpoint.Name)
		}
		start := time.Now()
		_, err := c.from.AskTCP("10.96.0.10:8080", 2*time.Second)
		if !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > time.Second {
			t.Errorf("%s to an undefined port of a ClusterIP: %v after %v; want refused at once", c.name, err, time.Since(start))
		}
		if got, err := c.from.AskTCP("10.96.0.99:8080", 700*time.Millisecond); !isTimeout(err) {
			t.Errorf("%s to an unallocated address in the ServiceCIDR: %q, %v; want dropped (timeout)", c.name, got, err)
		}
	}

	// The Service goes: a partial sync deletes its ClusterIP, now unallocated.
	empty := withCIDRs
	empty.ServiceMap, empty.EndpointMap = map[state.ServicePortName]*state.ServicePort{}, map[state.ServicePortName][]state.Endpoint{}
	cs := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{web.portName(): {}}}
	if st := tb.mustSync(t, &empty, cs); st.Full {
		t.Fatal("Service removal was a full sync")
	}
	if got, err := env.Node.AskTCP("10.96.0.10:80", 700*time.Millisecond); !isTimeout(err) {
		t.Fatalf("deleted Service's ClusterIP: %q, %v; want dropped (timeout)", got, err)
	}
}

func isTimeout(err error) bool {
	return err != nil && strings.Contains(err.Error(), "timeout")
}

type cidrTestbed struct{ p *coreProxier }

func serviceCIDRTestbed(t *testing.T, env *tnetns.Env, nss ...*tnetns.NS) *cidrTestbed {
	t.Helper()
	fd := openNetns(t, env.Node.Name)
	p, err := newCoreProxier(dataplane.Options{Config: &kpconfig.KubeProxyConfiguration{ClusterCIDR: "10.244.0.0/16"}})
	if err != nil {
		t.Fatal(err)
	}
	p.useNetns(fd)
	var local []netip.Addr
	for _, ns := range nss {
		local = append(local, ns.NodeIP)
	}
	p.localAddrs = func() ([]netip.Addr, error) { return local, nil }
	return &cidrTestbed{p: p}
}

func (tb *cidrTestbed) mustSync(t *testing.T, snap *state.Snapshot, cs state.ChangeSet) dataplane.SyncStats {
	t.Helper()
	st, err := tb.p.Sync(context.Background(), snap, cs)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return st
}

// openNetns opens a named namespace for the Proxier; closed when the test ends.
func openNetns(t *testing.T, name string) int {
	t.Helper()
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// IPv6 ServiceCIDRs load into the ip6 table, including a range that reaches the
// last address (no closing element), and the periodic check counts them right.
func TestKernelServiceCIDRsIPv6Intervals(t *testing.T) {
	tb := newTestbed(t)
	web := &spec{name: "web", clusterIP: "10.96.0.10", port: 80}
	snap := snapshotOf(map[*spec][]state.Endpoint{web: backendEndpoints()[:1]})
	snap.ServiceCIDRs = prefixes("10.96.0.0/16", "fd00:96::/112", "ffff::/16")
	tb.sync(t, snap)
	listing := tb.proxy.exec(t, "nft", "list", "set", "ip6", "kproxy", "service-cidrs")
	for _, want := range []string{"fd00:96::/112", "ffff::/16"} {
		if !strings.Contains(listing, want) {
			t.Fatalf("kernel lists\n%s\nwant %s", listing, want)
		}
	}
	if bad, err := tb.p.Damaged(context.Background()); bad || err != nil {
		t.Fatalf("Damaged: %v, %v; want an intact table", bad, err)
	}
	// Dropping one prefix is a partial sync that deletes only its interval.
	snap2 := *snap
	snap2.ServiceCIDRs = prefixes("10.96.0.0/16", "fd00:96::/112")
	st, err := tb.p.Sync(context.Background(), &snap2, state.ChangeSet{CIDRsChanged: true})
	if err != nil || st.Full || st.Written["ip6"] != 1 || st.Written["ip"] != 0 {
		t.Fatalf("removing ffff::/16: full=%v written=%v err=%v; want one ip6 element deleted", st.Full, st.Written, err)
	}
	if listing := tb.proxy.exec(t, "nft", "list", "set", "ip6", "kproxy", "service-cidrs"); strings.Contains(listing, "ffff::") {
		t.Fatalf("ffff::/16 still listed:\n%s", listing)
	}
}
