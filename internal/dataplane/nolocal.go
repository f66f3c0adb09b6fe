package dataplane

import "kproxy.dev/kproxy/internal/state"

// noLocal flags a port whose Local traffic policy finds no local endpoint while the
// Service has endpoints elsewhere: kubeproxy_sync_proxy_rules_no_local_endpoints_total.
type noLocal struct{ internal, external bool }

func noLocalOf(sp *state.ServicePort, cat state.Categorized) noLocal {
	none := cat.HasAny && len(cat.Local) == 0
	return noLocal{
		internal: none && sp.InternalPolicyLocal,
		external: none && sp.ExternalPolicyLocal && sp.ExternallyAccessible(),
	}
}

// updateNoLocal refreshes the flags of the ports this sync looked at.
func (c *Core) updateNoLocal(req *Request) {
	if req.Full {
		c.noLocal = map[state.ServicePortName]noLocal{}
		for n := range req.Snapshot.All() {
			c.setNoLocal(req, n)
		}
		return
	}
	for n := range req.Changed {
		c.setNoLocal(req, n)
	}
}

func (c *Core) setNoLocal(req *Request, n state.ServicePortName) {
	sp := req.Snapshot.Service(n)
	if sp == nil || !sp.UsesLocalEndpoints() {
		delete(c.noLocal, n)
		return
	}
	if f := noLocalOf(sp, req.Endpoints(n)); f.internal || f.external {
		c.noLocal[n] = f
	} else {
		delete(c.noLocal, n)
	}
}

func (c *Core) noLocalCounts() map[string]int {
	out := map[string]int{"internal": 0, "external": 0}
	for _, f := range c.noLocal {
		if f.internal {
			out["internal"]++
		}
		if f.external {
			out["external"]++
		}
	}
	return out
}
