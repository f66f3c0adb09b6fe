//go:build linux

package conntrack

import (
	"net/netip"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/netns"
)

// TestKernelReconcilerDeletesFlowToRemovedEndpoint: a real DNATed UDP flow to an
// endpoint the snapshot no longer has (a cleanup the sync missed) is deleted by one
// reconciler round; a flow to a serving endpoint survives, and the client's next
// datagram reaches the serving endpoint once the DNAT rule points there.
func TestKernelReconcilerDeletesFlowToRemovedEndpoint(t *testing.T) {
	netns.RequireRoot(t)
	env := netns.New(t, "ct-recon")
	gone := env.AddBackend("gone")
	gone.ServeUDP(t, 5353)
	live := env.AddBackend("live")
	live.ServeUDP(t, 5353)
	cl := env.AddClient("cl")
	dnat := func(op, to string) {
		env.Node.MustRun(t, "iptables-nft", "-t", "nat", op, "PREROUTING", "-d", "10.96.0.10", "-p", "udp",
			"--dport", "53", "-j", "DNAT", "--to-destination", to+":5353")
	}
	dnat("-A", gone.IP.String())
	c, err := cl.Dial("udp4", "10.96.0.10:53", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := netnsAsk(c); err != nil || got != gone.Name {
		t.Fatalf("setup: %q %v", got, err)
	}
	// The rule moves to the live endpoint, but the flow's entry still says "gone".
	dnat("-D", gone.IP.String())
	dnat("-A", live.IP.String())
	if got, _ := netnsAsk(c); got == live.Name {
		t.Fatal("setup: the old conntrack entry should still pin the flow")
	}

	n := state.ServicePortName{Namespace: "kube-system", Name: "dns", Protocol: v1.ProtocolUDP}
	snap := &state.Snapshot{
		ServiceMap: map[state.ServicePortName]*state.ServicePort{n: {Name: n, Protocol: v1.ProtocolUDP, Port: 53,
			ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.10")}}},
		EndpointMap: map[state.ServicePortName][]state.Endpoint{n: {{IP: live.IP, Port: 5353, Ready: true, Serving: true}}},
	}
	r := &Reconciler{Lister: NewLister(), Deleter: NewDeleter(), Snapshot: func() *state.Snapshot { return snap },
		Families: []Family{IPv4}}
	var deleted uint
	if err := env.Node.Do(func() (err error) { deleted, err = r.ReconcileOnce(); return err }); err != nil {
		t.Fatal(err)
	}
	if deleted != 1 {
		t.Fatalf("deleted %d entries, want 1", deleted)
	}
	if got, err := netnsAsk(c); err != nil || got != live.Name {
		t.Fatalf("after the reconciler: %q %v; want %s", got, err, live.Name)
	}
	// The flow now goes to a serving endpoint: a second round deletes nothing.
	if err := env.Node.Do(func() (err error) { deleted, err = r.ReconcileOnce(); return err }); err != nil || deleted != 0 {
		t.Fatalf("second round deleted %d (%v), want 0", deleted, err)
	}
}

func netnsAsk(c interface {
	Write([]byte) (int, error)
	Read([]byte) (int, error)
	SetReadDeadline(time.Time) error
}) (string, error) {
	if _, err := c.Write([]byte("q\n")); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	s := string(buf[:n])
	if len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return s, nil
}
