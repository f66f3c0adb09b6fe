//go:build linux

package ipvs

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"kproxy.dev/kproxy/internal/localroute"
	"kproxy.dev/kproxy/internal/testing/netns"
)

// TestBatchedLocalRoutesReachTheKernel makes 300 addresses (two chunks) local
// through a link named kube-ipvs0 (a veth end: the host has no dummy driver) in
// a private namespace through the batched rtnetlink path, then checks `ip route
// show table local proto 107` lists every one, Addrs reads them back, adding
// them again is no error, and a refused message in the middle of a chunk fails
// alone, with the kernel's errno, while its neighbours are done.
func TestBatchedLocalRoutesReachTheKernel(t *testing.T) {
	env := netns.New(t, "ipvsbatch-route")
	env.Node.MustRun(t, "ip", "link", "add", DummyLink, "type", "veth", "peer", "name", "kipvs-peer")
	var addrs []netip.Addr
	for i := range 300 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{10, 200, byte(i / 250), byte(1 + i%250)}))
	}
	addrs = append(addrs, netip.MustParseAddr("fd00:200::7"))
	var first, again []error
	var mixed []error
	var read []netip.Addr
	mid := []netip.Addr{netip.MustParseAddr("10.201.0.1"), netip.MustParseAddr("10.201.0.2"), netip.MustParseAddr("10.201.0.3")}
	if err := env.Node.Do(func() error {
		if err := (netlinkLinks{}).EnsureDummy(DummyLink); err != nil {
			return err
		}
		first = netlinkLinks{}.AddAddrs(DummyLink, addrs)
		again = netlinkLinks{}.AddAddrs(DummyLink, addrs[:10])
		s, err := openNetlink(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer s.Close()
		index, err := linkIndex(DummyLink)
		if err != nil {
			return err
		}
		req := func(index int, a netip.Addr) nlRequest {
			data, err := localroute.NewRouteMessage(index, a)
			if err != nil {
				t.Fatal(err)
			}
			return nlRequest{Type: unix.RTM_NEWROUTE, Flags: localroute.AppendFlags, Data: data}
		}
		mixed = s.exec([]nlRequest{req(index, mid[0]), req(987654, mid[1]), req(index, mid[2])}) // 987654: no such interface
		read, err = netlinkLinks{}.Addrs(DummyLink)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for i, err := range append(first, again...) {
		if err != nil {
			t.Errorf("address %d: %v", i, err)
		}
	}
	out := env.Node.MustRun(t, "ip", "-o", "route", "show", "table", "local", "proto", "107", "dev", DummyLink)
	out += env.Node.MustRun(t, "ip", "-o", "-6", "route", "show", "table", "local", "proto", "107", "dev", DummyLink)
	listed := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "local" {
			listed[f[1]] = true
		}
	}
	for _, a := range append(addrs, mid[0], mid[2]) {
		if !listed[a.String()] {
			t.Errorf("no local route for %s through %s:\n%s", a, DummyLink, out)
		}
	}
	if len(read) != len(addrs)+2 {
		t.Errorf("Addrs read %d addresses, want %d", len(read), len(addrs)+2)
	}
	if len(mixed) != 3 || mixed[0] != nil || mixed[2] != nil {
		t.Fatalf("the good messages around a refused one: %v, want nil, error, nil", mixed)
	}
	if !errors.Is(mixed[1], syscall.ENODEV) {
		t.Errorf("message for a missing interface: %v, want ENODEV", mixed[1])
	}
	if listed[mid[1].String()] {
		t.Errorf("the refused address %s is routed", mid[1])
	}
}

// TestBatchedAddressAddsToMissingLinkFailEach: every address gets the error.
func TestBatchedAddressAddsToMissingLinkFailEach(t *testing.T) {
	env := netns.New(t, "ipvsbatch-nolink")
	var errs []error
	if err := env.Node.Do(func() error {
		errs = netlinkLinks{}.AddAddrs("kube-ipvs0", []netip.Addr{netip.MustParseAddr("10.96.0.1"), netip.MustParseAddr("10.96.0.2")})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("address %d: %v, want link not found", i, err)
		}
	}
}

// TestNetlinkQueryResolvesGenericFamily asks the generic netlink controller for
// a family every kernel has (nlctrl), through the same socket code.
func TestNetlinkQueryResolvesGenericFamily(t *testing.T) {
	env := netns.New(t, "ipvsbatch-genl")
	var id uint16
	if err := env.Node.Do(func() error {
		s, err := openNetlink(unix.NETLINK_GENERIC)
		if err != nil {
			return err
		}
		defer s.Close()
		req, err := getFamilyRequest("nlctrl")
		if err != nil {
			return err
		}
		answers, err := s.query(req)
		if err != nil {
			return err
		}
		id, err = familyID(answers)
		if err != nil {
			return err
		}
		if _, err := s.query(mustFamilyRequest(t, "no-such-family")); !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("unknown family: %v, want ENOENT", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if id != genlIDCtrl {
		t.Fatalf("nlctrl family id %#x, want %#x", id, genlIDCtrl)
	}
}

func mustFamilyRequest(t *testing.T, name string) nlRequest {
	r, err := getFamilyRequest(name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
