package userspace

import "fmt"

// A frontend's socket is open only while the frontend has somewhere to send
// (feConfig.listens): a Service port without any endpoint has its address (kept
// local, claimed as before) but no listener, so the kernel itself refuses the
// clients, as kube-proxy's REJECT does: a TCP connect() fails with ECONNREFUSED
// at once and a UDP datagram is answered with ICMP port unreachable. The socket
// is opened again (with SO_REUSEPORT, as always) when the port gains an
// endpoint. Parking and closing happen under Proxier.mu.

// setListening opens or closes fe's socket to match want. It reports whether
// it changed anything; an error leaves the frontend without a socket, and the
// Service is retried on the next Sync.
func (p *Proxier) setListening(fe *frontend, want bool) (bool, error) {
	if fe.closed || want == fe.listening {
		return false, nil
	}
	if !want {
		fe.closeSocket()
		fe.listening = false
		p.listeners--
		return true, nil
	}
	if p.budget > 0 && p.listeners >= p.budget {
		return false, errNoDescriptors
	}
	if err := p.listen(fe); err != nil {
		return false, err
	}
	fe.listening = true
	p.listeners++
	return true, nil
}

// syncListening applies the frontend's current config to its socket.
func (p *Proxier) syncListening(run *syncRun, svcName fmt.Stringer, fe *frontend) error {
	cfg := fe.cfg.Load()
	changed, err := p.setListening(fe, cfg != nil && cfg.listens())
	if changed {
		run.written++
	}
	if err != nil {
		return fmt.Errorf("service %s: %s %s: %w", svcName, fe.kind, fe.key, err)
	}
	return nil
}

// closeSocket closes fe's listener, if any; open relays carry on. UDP flows end
// with it, as the socket carries their replies.
func (fe *frontend) closeSocket() {
	if fe.watch != nil {
		fe.watch.remove()
		fe.watch = nil
	}
	if fe.tcp != nil {
		fe.tcp.Close()
		fe.tcp = nil
	}
	if fe.udp != nil {
		fe.udp.close()
		fe.udp = nil
	}
}

// close stops the frontend for good: it takes no new connections and is never
// opened again.
func (fe *frontend) close() {
	fe.closed = true
	fe.listening = false
	fe.closeSocket()
}
