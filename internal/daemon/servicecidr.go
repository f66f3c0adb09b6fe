package daemon

import (
	networkingv1 "k8s.io/api/networking/v1"

	"kproxy.dev/kproxy/internal/state"
)

// nodeWatch passes ServiceCIDRs through to the tracker: the embedded Handler
// interface alone would hide its ServiceCIDRHandler methods from the source.
var _ state.ServiceCIDRHandler = (*nodeWatch)(nil)

func (w *nodeWatch) UpsertServiceCIDR(sc *networkingv1.ServiceCIDR) {
	if h, ok := w.Handler.(state.ServiceCIDRHandler); ok {
		h.UpsertServiceCIDR(sc)
	}
}

func (w *nodeWatch) DeleteServiceCIDR(name string) {
	if h, ok := w.Handler.(state.ServiceCIDRHandler); ok {
		h.DeleteServiceCIDR(name)
	}
}
