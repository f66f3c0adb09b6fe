//go:build linux

package ebpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// destroy closes the sockets that reached a removed backend through a Service
// (their cookie and backend are in revnat), with netlink SOCK_DESTROY, so their
// owners see ECONNABORTED and reconnect to a live backend. Sockets that connected
// to the backend address directly are left alone. sock_diag sees one network
// namespace, so the pass runs in every namespace some process of the node is in
// (pods' sockets live in theirs).
func (p *Proxier) destroy(gone []netip.AddrPort) {
	want := map[netip.AddrPort]bool{}
	for _, ap := range gone {
		want[ap] = true
	}
	n := 0
	err := forEachNetns(func() { n += p.destroyHere(want) })
	if err != nil {
		p.warnOnce("netns", "cannot enter every network namespace to destroy sockets of removed backends", "err", err)
	}
	if n > 0 {
		p.log.Info("destroyed sockets connected to removed backends", "sockets", n, "backends", gone)
	}
}

// destroyHere is one destroy pass in the calling thread's network namespace.
func (p *Proxier) destroyHere(want map[netip.AddrPort]bool) int {
	n := 0
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		for _, proto := range []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
			socks, err := listSockets(fam, proto)
			if err != nil {
				p.warnOnce("sock-diag", "cannot list sockets to destroy those of removed backends", "err", err)
				continue
			}
			for _, s := range socks {
				if p.destroyOne(s, fam, proto, want) {
					n++
				}
			}
		}
	}
	return n
}

// forEachNetns runs fn in this thread's network namespace and then, on a locked
// thread, in every other namespace found in /proc/*/ns/net (each once).
// /proc/self/ns/net would be the main thread's, which need not be this one's.
func forEachNetns(fn func()) error {
	runtime.LockOSThread()
	self, err := nsInode("/proc/thread-self/ns/net")
	if err == nil {
		fn()
	}
	runtime.UnlockOSThread()
	if err != nil {
		return err
	}
	seen := map[uint64]bool{self: true}
	paths, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	var errs []error
	for _, path := range paths {
		ino, err := nsInode(path)
		if err != nil || seen[ino] {
			continue // the process exited, or a namespace already done
		}
		seen[ino] = true
		if err := inNetns(path, fn); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func nsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// inNetns runs fn on a thread moved into the namespace at path. A thread that
// cannot be moved back stays locked, so the runtime discards it.
func inNetns(path string, fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- nil // the process exited meanwhile
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter %s: %w", path, err)
			return
		}
		fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- nil
	}()
	return <-errc
}

func (p *Proxier) destroyWorker() {
	defer close(p.workerDone)
	for gone := range p.destroyQ {
		p.destroy(gone)
		p.pendingDestroy.Done()
	}
}

// waitDestroy waits until every queued destroy pass ran.
func (p *Proxier) waitDestroy() { p.pendingDestroy.Wait() }

func listSockets(fam, proto uint8) ([]*netlink.Socket, error) {
	if proto == unix.IPPROTO_TCP {
		return netlink.SocketDiagTCP(fam)
	}
	return netlink.SocketDiagUDP(fam)
}

func (p *Proxier) destroyOne(s *netlink.Socket, fam, proto uint8, want map[netip.AddrPort]bool) bool {
	dst, ok := netip.AddrFromSlice(s.ID.Destination)
	if !ok {
		return false
	}
	ap := netip.AddrPortFrom(dst.Unmap(), s.ID.DestinationPort)
	if !want[ap] {
		return false
	}
	key := revnatKey{Cookie: uint64(s.ID.Cookie[0]) | uint64(s.ID.Cookie[1])<<32, Addr: addr16(ap.Addr()), Port: port2(ap.Port())}
	var v backendValue
	if err := p.maps.revnat.Lookup(&key, &v); err != nil {
		return false
	}
	req := nl.NewNetlinkRequest(nl.SOCK_DESTROY, unix.NLM_F_ACK)
	req.AddData(&diagReq{family: fam, proto: proto, id: s.ID})
	if _, err := req.Execute(unix.NETLINK_INET_DIAG, 0); err != nil {
		p.warnOnce("sock-destroy", "cannot destroy a socket of a removed backend (needs CONFIG_INET_DIAG_DESTROY)", "err", err)
		return false
	}
	_ = p.maps.revnat.Delete(&key)
	return true
}

// diagReq is struct inet_diag_req_v2 naming one socket exactly (with its cookie).
type diagReq struct {
	family, proto uint8
	id            netlink.SocketID
}

func (r *diagReq) Len() int { return 56 }

func (r *diagReq) Serialize() []byte {
	b := make([]byte, 56)
	b[0], b[1] = r.family, r.proto
	binary.NativeEndian.PutUint32(b[4:], 0xffffffff) // every state
	binary.BigEndian.PutUint16(b[8:], r.id.SourcePort)
	binary.BigEndian.PutUint16(b[10:], r.id.DestinationPort)
	putIP(b[12:28], r.id.Source, r.family)
	putIP(b[28:44], r.id.Destination, r.family)
	binary.NativeEndian.PutUint32(b[44:], r.id.Interface)
	binary.NativeEndian.PutUint32(b[48:], r.id.Cookie[0])
	binary.NativeEndian.PutUint32(b[52:], r.id.Cookie[1])
	return b
}

func putIP(b []byte, ip net.IP, fam uint8) {
	if fam == unix.AF_INET {
		copy(b, ip.To4())
		return
	}
	copy(b, ip.To16())
}

func (p *Proxier) warnOnce(key, msg string, args ...any) {
	if p.warned[key] {
		return
	}
	p.warned[key] = true
	p.log.Warn(msg, args...)
}
