package state

// Categorized is the result of endpoint categorisation for one ServicePort, with
// kube-proxy's semantics (pkg/proxy/topology.go): ready endpoints first, falling back
// to serving+terminating ones when none are ready, separately for cluster and local
// traffic, and topology hints when every ready endpoint carries them. Its slices
// may share the Snapshot's array (FilterEndpoints): like the Snapshot's values,
// they are never modified.
type Categorized struct {
	// Cluster receives traffic whose policy is Cluster.
	Cluster []Endpoint
	// Local receives traffic whose policy is Local (only endpoints on this node).
	Local []Endpoint
	// AllReachable is the union of Cluster and Local: every endpoint some traffic may reach.
	AllReachable []Endpoint
	// HasAny is true when the Service has a usable endpoint anywhere in the cluster;
	// false means traffic should be rejected rather than dropped.
	HasAny bool
}

// Categorize returns the endpoint sets of one ServicePort in this snapshot.
func (s *Snapshot) Categorize(name ServicePortName) Categorized {
	sp, eps := s.Port(name)
	if sp == nil {
		return Categorized{}
	}
	return CategorizeEndpoints(sp, eps, s.Node)
}

// CategorizeEndpoints splits endpoints by traffic policy. It is pure.
func CategorizeEndpoints(sp *ServicePort, eps []Endpoint, node NodeInfo) Categorized {
	var c Categorized
	useTopology := false
	if sp.UsesClusterEndpoints() {
		topo := topologyFilter(eps, node)
		useTopology = topo != nil
		c.Cluster = FilterEndpoints(eps, func(e *Endpoint) bool {
			return e.Ready && (topo == nil || topo(e))
		})
		if len(c.Cluster) == 0 {
			c.Cluster = FilterEndpoints(eps, servingTerminating)
		}
		c.HasAny = len(c.Cluster) > 0
	}
	if !sp.UsesLocalEndpoints() {
		c.AllReachable = c.Cluster
		return c
	}
	localReady, localTerminating := false, false
	for _, e := range eps {
		switch {
		case e.Ready:
			c.HasAny = true
			localReady = localReady || e.IsLocal
		case servingTerminating(&e):
			c.HasAny = true
			localTerminating = localTerminating || e.IsLocal
		}
	}
	usedTerminating := false
	switch {
	case localReady:
		c.Local = FilterEndpoints(eps, func(e *Endpoint) bool { return e.Ready && e.IsLocal })
	case localTerminating:
		usedTerminating = true
		c.Local = FilterEndpoints(eps, func(e *Endpoint) bool { return e.IsLocal && servingTerminating(e) })
	}
	if !sp.UsesClusterEndpoints() {
		c.AllReachable = c.Local
		return c
	}
	if !useTopology && !usedTerminating {
		// Cluster holds every ready endpoint and Local only ready ones: a superset.
		c.AllReachable = c.Cluster
		return c
	}
	c.AllReachable = mergeEndpoints(c.Cluster, c.Local)
	return c
}

func servingTerminating(e *Endpoint) bool { return e.Serving && e.Terminating }

// FilterEndpoints returns the endpoints keep accepts, nil for none. When it
// accepts all, the usual case, it returns eps itself (capped, so an append
// copies) instead of a copy: categorising 10,000 Services allocated mostly
// these copies. Callers never modify the result, as they never modify eps.
func FilterEndpoints(eps []Endpoint, keep func(*Endpoint) bool) []Endpoint {
	n := 0
	for i := range eps {
		if keep(&eps[i]) {
			n++
		}
	}
	switch n {
	case 0:
		return nil
	case len(eps):
		return eps[:n:n]
	}
	out := make([]Endpoint, 0, n)
	for i := range eps {
		if keep(&eps[i]) {
			out = append(out, eps[i])
		}
	}
	return out
}

func mergeEndpoints(a, b []Endpoint) []Endpoint {
	seen := make(map[string]bool, len(a)+len(b))
	var out []Endpoint
	for _, list := range [][]Endpoint{a, b} {
		for _, e := range list {
			if k := e.String(); !seen[k] {
				seen[k] = true
				out = append(out, e)
			}
		}
	}
	return out
}

// topologyFilter returns the hint filter that decides for these endpoints, or nil.
// Hints decide when every ready endpoint carries a hint of one kind and one of them
// names this node (PreferSameNode, tried first) or this node's zone.
func topologyFilter(eps []Endpoint, node NodeInfo) func(*Endpoint) bool {
	nodeHints := func(e Endpoint) []string { return e.NodeHints() }
	zoneHints := func(e Endpoint) []string { return e.ZoneHints() }
	if hintsUsable(eps, nodeHints, node.Name) {
		return func(e *Endpoint) bool { return contains(e.NodeHints(), node.Name) }
	}
	if hintsUsable(eps, zoneHints, node.Zone) {
		return func(e *Endpoint) bool { return contains(e.ZoneHints(), node.Zone) }
	}
	return nil
}

func hintsUsable(eps []Endpoint, hints func(Endpoint) []string, want string) bool {
	if want == "" {
		return false
	}
	matched, anyReady := false, false
	for _, e := range eps {
		if !e.Ready {
			continue
		}
		anyReady = true
		h := hints(e)
		if len(h) == 0 {
			return false
		}
		matched = matched || contains(h, want)
	}
	return anyReady && matched
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
