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

	"kproxy.dev/kproxy/internal/testing/netns"
)

// TestBatchedAddressAddsReachTheKernel binds 300 addresses (two chunks) to the
// loopback of a private namespace through the batched rtnetlink path, then checks
// `ip addr` lists every one, that binding them again is no error, and that a
// refused message in the middle of a chunk fails alone, with the kernel's errno,
// while its neighbours are done.
func TestBatchedAddressAddsReachTheKernel(t *testing.T) {
	env := netns.New(t, "ipvsbatch-addr")
	var addrs []netip.Addr
	for i := range 300 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{10, 200, byte(i / 250), byte(1 + i%250)}))
	}
	addrs = append(addrs, netip.MustParseAddr("fd00:200::7"))
	var first, again []error
	var mixed []error
	mid := []netip.Addr{netip.MustParseAddr("10.201.0.1"), netip.MustParseAddr("10.201.0.2"), netip.MustParseAddr("10.201.0.3")}
	if err := env.Node.Do(func() error {
		first = netlinkLinks{}.AddAddrs("lo", addrs)
		again = netlinkLinks{}.AddAddrs("lo", addrs[:10])
		s, err := openNetlink(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer s.Close()
		lo, _ := newAddrRequest(1, mid[0])
		bad, _ := newAddrRequest(987654, mid[1]) // no such interface
		lo2, _ := newAddrRequest(1, mid[2])
		mixed = s.exec([]nlRequest{lo, bad, lo2})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, err := range append(first, again...) {
		if err != nil {
			t.Errorf("address %d: %v", i, err)
		}
	}
	out := env.Node.MustRun(t, "ip", "-o", "addr", "show", "dev", "lo")
	listed := map[string]bool{}
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil {
			listed[p.String()] = true
		}
	}
	for _, a := range append(addrs, mid[0], mid[2]) {
		if want := netip.PrefixFrom(a, a.BitLen()).String(); !listed[want] {
			t.Errorf("%s not bound to lo:\n%s", want, out)
		}
	}
	if len(mixed) != 3 || mixed[0] != nil || mixed[2] != nil {
		t.Fatalf("the good messages around a refused one: %v, want nil, error, nil", mixed)
	}
	if !errors.Is(mixed[1], syscall.ENODEV) {
		t.Errorf("message for a missing interface: %v, want ENODEV", mixed[1])
	}
	if listed[netip.PrefixFrom(mid[1], 32).String()] {
		t.Errorf("the refused address %s is bound", mid[1])
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
