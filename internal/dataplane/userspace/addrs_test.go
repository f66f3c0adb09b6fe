package userspace

import (
	"net/netip"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// fakeAddrs stands for the host when the test must not touch its addresses.
type fakeAddrs struct {
	root  bool
	added map[netip.Addr]bool
}

func (f *fakeAddrs) canAdd() bool { return f.root }
func (f *fakeAddrs) add(a netip.Addr) error {
	f.added[a] = true
	return nil
}
func (f *fakeAddrs) remove(a netip.Addr) error {
	delete(f.added, a)
	return nil
}
func (f *fakeAddrs) cleanup() error               { return nil }
func (f *fakeAddrs) adopt() ([]netip.Addr, error) { return nil, nil }

func TestNonLocalClusterIPWithoutRootIsAnErrorOthersKeepWorking(t *testing.T) {
	t.Parallel()
	a := startTCPBackend(t, "A")
	p, _ := testProxier(t, nil)
	fake := &fakeAddrs{added: map[netip.Addr]bool{}}
	p.addrs = fake
	remote := netip.MustParseAddr("203.0.113.77") // TEST-NET-3: never a local address
	bad := newSvc("remote", v1.ProtocolTCP, remote, 8080, a)
	ip := randLoopback()
	good := newSvc("good", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a)
	sn := snap(state.NodeInfo{}, bad, good)
	_, err := coreFor(p).Sync(t.Context(), sn, allChanged(sn))
	if err == nil || !strings.Contains(err.Error(), "default/remote:p") || !strings.Contains(err.Error(), "203.0.113.77") {
		t.Fatalf("Sync error = %v, want one naming the Service and its address", err)
	}
	if strings.Contains(err.Error(), "default/good:p") {
		t.Fatalf("Sync error blames the good Service too: %v", err)
	}
	if !dataplane.IsPartial(err) {
		t.Fatalf("Sync error %T is not a dataplane.PartialError: the other Services were programmed", err)
	}
	if got := names(t, netip.Addr{}, good.addr(), 1)[0]; got != "A" {
		t.Fatalf("good Service answered %q, want A", got)
	}
	if len(fake.added) != 0 {
		t.Fatalf("addresses added without root: %v", fake.added)
	}
	// The failed Service is retried on the next Sync even when nothing changed.
	if _, err := coreFor(p).Sync(t.Context(), sn, state.ChangeSet{}); err == nil || !strings.Contains(err.Error(), "default/remote:p") {
		t.Fatalf("second Sync error = %v, want the failed Service retried and reported", err)
	}
}

func TestLoopbackClusterIPNeedsNoAddress(t *testing.T) {
	t.Parallel()
	a := startTCPBackend(t, "A")
	p, _ := testProxier(t, nil)
	fake := &fakeAddrs{root: true, added: map[netip.Addr]bool{}}
	p.addrs = fake
	ip := randLoopback()
	s := newSvc("lo", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	if len(fake.added) != 0 {
		t.Fatalf("a 127/8 ClusterIP made kproxy add %v", fake.added)
	}
}

func TestAddedServiceAddressesAreNotNodePortAddresses(t *testing.T) {
	t.Parallel()
	p, _ := testProxier(t, nil)
	fake := &fakeAddrs{root: true, added: map[netip.Addr]bool{}}
	p.addrs = fake
	p.listen = func(*frontend) error { return nil } // the addresses are not really there
	nodeIP := netip.MustParseAddr("192.0.2.10")
	p.localAddrs = func() ([]netip.Addr, error) {
		out := []netip.Addr{nodeIP}
		for a := range fake.added { // what the kernel would now report
			out = append(out, a)
		}
		return out, nil
	}
	ci := newSvc("ci", v1.ProtocolTCP, netip.MustParseAddr("10.96.1.1"), 80)
	np := newSvc("np", v1.ProtocolTCP, netip.MustParseAddr("10.96.1.2"), 80)
	np.sp.NodePort = 30080
	sn := snap(state.NodeInfo{}, ci, np)
	mustSync(t, p, sn, allChanged(sn))
	p.needFull = true // and again, now that the ClusterIPs are interface addresses
	mustSync(t, p, sn, state.ChangeSet{})
	if !fake.added[netip.MustParseAddr("10.96.1.1")] {
		t.Fatal("non-local ClusterIP was not added as root")
	}
	var nodePorts []string
	for k, fe := range p.frontends {
		if fe.kind == kindNodePort {
			nodePorts = append(nodePorts, k.addr.String())
		}
	}
	if len(nodePorts) != 1 || nodePorts[0] != "192.0.2.10:30080" {
		t.Fatalf("NodePort listeners %v, want only the node address 192.0.2.10:30080", nodePorts)
	}
}
