//go:build linux

package bench

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Env is the private network setup of one measurement:
//
//	node namespace (kproxy, its tools, the connect client)
//	  cmp0 10.250.0.1/30 ── veth ── cmp1 10.250.0.2/30  backend namespace
//	  default via 10.250.0.2                            local 10.128.0.0/11 dev lo
//	                                                    listener *:8080
//
// A client in the node namespace connecting to a ClusterIP goes through the
// mode's OUTPUT-path NAT (or IPVS, or the userspace relay) and reaches the
// backend over a real interface: every endpoint address of the workload is local
// in the backend namespace, so one listener answers for all of them.
type Env struct {
	NodeName, BackendName string
	node, backend         netns.NsHandle
	ln                    net.Listener
	wg                    sync.WaitGroup
}

// Link and address plan inside the private namespaces (never the root one).
const (
	nodeLink    = "cmp0"
	backendLink = "cmp1"
)

var (
	nodeAddr    = netip.MustParsePrefix("10.250.0.1/30")
	backendAddr = netip.MustParsePrefix("10.250.0.2/30")
)

// NewEnv creates the two namespaces named prefix+"-n" and prefix+"-b", the veth
// between them and the backend listener. Close deletes everything, also after a
// partial failure here.
func NewEnv(prefix string) (env *Env, err error) {
	e := &Env{NodeName: prefix + "-n", BackendName: prefix + "-b", node: -1, backend: -1}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	err = inThread(func() error {
		var err error
		if e.backend, err = netns.NewNamed(e.BackendName); err != nil {
			return fmt.Errorf("create network namespace %s: %w", e.BackendName, err)
		}
		if e.node, err = netns.NewNamed(e.NodeName); err != nil {
			return fmt.Errorf("create network namespace %s: %w", e.NodeName, err)
		}
		return nil
	})
	if err != nil {
		return e, err
	}
	if err = e.wire(); err != nil {
		return e, err
	}
	return e, e.listen()
}

// inThread runs f on a locked OS thread and puts the thread back into the
// namespace it started in, so no other goroutine ever runs in a bench namespace.
func inThread(f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// The thread is in the wrong namespace: let the runtime throw it away
		// instead of reusing it (LockOSThread without Unlock on exit).
		runtime.LockOSThread()
		return errors.Join(ferr, fmt.Errorf("return to the original network namespace: %w", err))
	}
	return ferr
}

func (e *Env) wire() error {
	// Only rtnetlink: the default families include XFRM, which minimal kernels
	// (the test VM) lack.
	hn, err := netlink.NewHandleAt(e.node, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", e.NodeName, err)
	}
	defer hn.Close()
	hb, err := netlink.NewHandleAt(e.backend, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", e.BackendName, err)
	}
	defer hb.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: nodeLink}, PeerName: backendLink, PeerNamespace: netlink.NsFd(e.backend)}
	if err := hn.LinkAdd(veth); err != nil {
		return fmt.Errorf("veth %s/%s in %s: %w", nodeLink, backendLink, e.NodeName, err)
	}
	if err := setupSide(hn, nodeLink, nodeAddr); err != nil {
		return fmt.Errorf("%s: %w", e.NodeName, err)
	}
	if err := setupSide(hb, backendLink, backendAddr); err != nil {
		return fmt.Errorf("%s: %w", e.BackendName, err)
	}
	link, err := hn.LinkByName(nodeLink)
	if err != nil {
		return err
	}
	// Services are reached through the default route, as on a real node.
	gw := net.IP(backendAddr.Addr().AsSlice())
	if err := hn.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw}); err != nil {
		return fmt.Errorf("%s: default route: %w", e.NodeName, err)
	}
	lo, err := hb.LinkByName("lo")
	if err != nil {
		return err
	}
	// Every endpoint address is local in the backend namespace (like `ip route add
	// local 10.128.0.0/11 dev lo`), so one wildcard listener serves them all.
	local := &netlink.Route{
		LinkIndex: lo.Attrs().Index, Dst: ipNet(EndpointCIDR), Type: unix.RTN_LOCAL,
		Table: unix.RT_TABLE_LOCAL, Scope: netlink.SCOPE_HOST,
	}
	if err := hb.RouteAdd(local); err != nil {
		return fmt.Errorf("%s: local route %s: %w", e.BackendName, EndpointCIDR, err)
	}
	return nil
}

func setupSide(h *netlink.Handle, name string, addr netip.Prefix) error {
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	link, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
		return fmt.Errorf("address %s on %s: %w", addr, name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s up: %w", name, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// listen opens the backend's wildcard listener from inside the backend namespace
// and answers each connection with a one-byte greeting until Close.
func (e *Env) listen() error {
	err := inThread(func() error {
		if err := netns.Set(e.backend); err != nil {
			return err
		}
		var err error
		e.ln, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", EndpointPort))
		return err
	})
	if err != nil {
		return fmt.Errorf("backend listener in %s: %w", e.BackendName, err)
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := e.ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			// The greeting lets the client time the full path to the backend.
			_, _ = c.Write([]byte{'k'})
			c.Close()
		}
	}()
	return nil
}

// Start starts cmd inside the node namespace. The fork happens on a thread that
// has entered the namespace, so the child (and everything it runs) lives there.
func (e *Env) Start(cmd *exec.Cmd) error {
	return inThread(func() error {
		if err := netns.Set(e.node); err != nil {
			return err
		}
		return cmd.Start()
	})
}

// Close stops the listener and deletes both namespaces (the veth goes with them).
func (e *Env) Close() error {
	var errs []error
	if e.ln != nil {
		e.ln.Close()
		e.wg.Wait()
	}
	for _, h := range []*netns.NsHandle{&e.node, &e.backend} {
		if h.IsOpen() {
			h.Close()
		}
	}
	for _, name := range []string{e.NodeName, e.BackendName} {
		if err := netns.DeleteNamed(name); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("delete network namespace %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
