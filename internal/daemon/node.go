package daemon

import (
	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/healthz"
	"kproxy.dev/kproxy/internal/state"
)

// taintToBeDeleted is set by the cluster autoscaler on a node it is removing.
const taintToBeDeleted = "ToBeDeletedByClusterAutoscaler"

// nodeWatch passes every event to the tracker and, on the way, notes whether this
// node should still get load-balancer traffic (kube-proxy's /healthz nodeEligible):
// not when it is being deleted or drained by the autoscaler.
type nodeWatch struct {
	state.Handler
	nodeName string
	health   *healthz.Server
}

func (w *nodeWatch) UpsertNode(n *v1.Node) {
	if n.Name == w.nodeName {
		w.health.SetNodeEligible(nodeEligible(n))
	}
	w.Handler.UpsertNode(n)
}

func nodeEligible(n *v1.Node) bool {
	if n.DeletionTimestamp != nil {
		return false
	}
	for _, t := range n.Spec.Taints {
		if t.Key == taintToBeDeleted {
			return false
		}
	}
	return true
}
