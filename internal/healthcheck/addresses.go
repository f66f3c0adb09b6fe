package healthcheck

import (
	"net/netip"
	"slices"

	"kproxy.dev/kproxy/internal/nodeaddr"
	"kproxy.dev/kproxy/internal/state"
)

// listenAddrs returns the addresses health-check ports bind, as kube-proxy does:
// the addresses nodePortAddresses selects, or every address ("") when it selects
// all of them (the iptables and ipvs default). Options.Addresses, when set, wins.
func (s *Server) listenAddrs(snap *state.Snapshot) ([]string, error) {
	o := s.opts
	if len(o.Addresses) > 0 {
		return o.Addresses, nil
	}
	list := o.NodePortAddresses
	if len(list) == 0 {
		list = o.DefaultNodePortAddresses
	}
	f, err := nodeaddr.Parse(list)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 || f.All {
		return []string{""}, nil
	}
	var local []netip.Addr
	if o.LocalAddresses != nil {
		if local, err = o.LocalAddresses(); err != nil {
			return nil, err
		}
	}
	var node []netip.Addr
	if snap != nil {
		node = snap.Node.Addresses
	}
	sel, err := nodeaddr.Select(nodeaddr.Options{NodeAddresses: node, LocalAddresses: local, NodePortAddresses: list})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(sel))
	for _, a := range sel {
		out = append(out, a.String())
	}
	return out, nil
}

// rebind re-resolves the listen addresses from snap; when they changed, every open
// port is closed so the next Update reopens it on the new addresses.
func (s *Server) rebind(snap *state.Snapshot) error {
	addrs, err := s.listenAddrs(snap)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bound != nil && slices.Equal(addrs, s.bound) {
		return nil
	}
	if s.bound != nil {
		s.opts.Logger.Info("health-check node ports move to new addresses", "addresses", addrs)
	}
	for key, srv := range s.services {
		srv.close()
		delete(s.services, key)
	}
	s.bound = addrs
	s.stale = true
	return nil
}

func nodeChanged(prev, cur *state.Snapshot) bool {
	return prev == nil || !slices.Equal(prev.Node.Addresses, cur.Node.Addresses)
}
