package state

import (
	"fmt"
	"net/netip"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
)

// ServiceCIDRHandler receives networking.k8s.io/v1 ServiceCIDR objects. It is
// separate from Handler so that sources and handlers that predate ServiceCIDRs keep
// compiling; a source delivers ServiceCIDRs only to a handler that implements it.
// The Tracker does.
type ServiceCIDRHandler interface {
	UpsertServiceCIDR(sc *networkingv1.ServiceCIDR)
	DeleteServiceCIDR(name string)
}

var _ ServiceCIDRHandler = (*Tracker)(nil)

// ServiceCIDRPrefixes converts a ServiceCIDR's spec.cidrs into masked prefixes. An
// invalid entry is an error naming the field; the caller keeps the last good version.
func ServiceCIDRPrefixes(sc *networkingv1.ServiceCIDR) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(sc.Spec.CIDRs))
	for i, s := range sc.Spec.CIDRs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("spec.cidrs[%d]: %q is not a CIDR", i, s)
		}
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("spec.cidrs[%d]: %q is an IPv4-mapped IPv6 prefix", i, s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// UpsertServiceCIDR records a new or updated ServiceCIDR. An object with an invalid
// spec.cidrs is reported and its last good version kept.
func (t *Tracker) UpsertServiceCIDR(sc *networkingv1.ServiceCIDR) {
	t.update(func() bool {
		prefixes, err := ServiceCIDRPrefixes(sc)
		if err != nil {
			t.reject("ServiceCIDR "+sc.Name, sc, err)
			return false
		}
		delete(t.reported, "ServiceCIDR "+sc.Name)
		if t.cidrs == nil {
			t.cidrs = map[string][]netip.Prefix{}
		}
		if old, ok := t.cidrs[sc.Name]; ok && slices.Equal(old, prefixes) {
			return false
		}
		t.cidrs[sc.Name] = prefixes
		t.cidrsDirty = true
		return true
	})
}

// DeleteServiceCIDR forgets a ServiceCIDR.
func (t *Tracker) DeleteServiceCIDR(name string) {
	t.update(func() bool {
		if _, ok := t.cidrs[name]; !ok {
			return false
		}
		delete(t.cidrs, name)
		delete(t.reported, "ServiceCIDR "+name)
		t.cidrsDirty = true
		return true
	})
}

// unionCIDRs is the sorted, deduplicated union of every ServiceCIDR's prefixes;
// nil when there are none.
func unionCIDRs(byName map[string][]netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, ps := range byName {
		out = append(out, ps...)
	}
	slices.SortFunc(out, comparePrefix)
	return slices.Compact(out)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// foldCIDRs puts the current ServiceCIDR prefixes into next and reports whether
// they differ from the previous snapshot's. Called by Snapshot with the lock held.
func (t *Tracker) foldCIDRs(next *Snapshot) bool {
	if !t.cidrsDirty {
		return false
	}
	t.cidrsDirty = false
	next.ServiceCIDRs = unionCIDRs(t.cidrs)
	return !slices.Equal(next.ServiceCIDRs, t.prev.ServiceCIDRs)
}
