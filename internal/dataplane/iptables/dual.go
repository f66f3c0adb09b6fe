package iptables

import (
	"context"
	"errors"
	"time"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// dualProxier runs one Proxier per IP family, as kube-proxy's dual-stack
// metaproxier does: each family renders only its own addresses and writes its
// own tables (iptables-restore and ip6tables-restore), so neither family's
// failure can corrupt the other's input. The core sees one Programmer.
type dualProxier struct {
	v4, v6 *Proxier
}

var (
	_ dataplane.Programmer = (*dualProxier)(nil)
	_ dataplane.Checker    = (*dualProxier)(nil)
	_ dataplane.Bencher    = (*dualProxier)(nil)
)

// Apply applies req in both families. Both are always tried, so an IPv6 failure
// does not keep IPv4 Services from being programmed (and the reverse); the errors
// are joined and the next sync is a full one for both, which rewrites only what
// differs.
func (d *dualProxier) Apply(ctx context.Context, req *dataplane.Request) (dataplane.Applied, error) {
	a4, err4 := d.v4.Apply(ctx, req)
	a6, err6 := d.v6.Apply(ctx, req)
	return sumApplied(a4, a6), errors.Join(err4, err6)
}

func sumApplied(a, b dataplane.Applied) dataplane.Applied {
	out := dataplane.Applied{Full: a.Full || b.Full}
	out.Rules = sumCounts(a.Rules, b.Rules)
	out.Written = sumCounts(a.Written, b.Written)
	return out
}

func sumCounts(a, b map[string]int) map[string]int {
	if a == nil && b == nil {
		return nil
	}
	out := make(map[string]int, len(a))
	for k, v := range a {
		out[k] += v
	}
	for k, v := range b {
		out[k] += v
	}
	return out
}

// Damaged reports damage in either family.
func (d *dualProxier) Damaged(ctx context.Context) (bool, error) {
	bad4, err4 := d.v4.Damaged(ctx)
	if bad4 && err4 == nil {
		return true, nil
	}
	bad6, err6 := d.v6.Damaged(ctx)
	return bad4 || bad6, errors.Join(err4, err6)
}

// Cleanup removes both families' chains.
func (d *dualProxier) Cleanup(ctx context.Context) error {
	return errors.Join(d.v4.Cleanup(ctx), d.v6.Cleanup(ctx))
}

// Render counts both families' rules (kproxy bench).
func (d *dualProxier) Render(snap *state.Snapshot) (int, error) {
	n4, err := d.v4.Render(snap)
	if err != nil {
		return 0, err
	}
	n6, err := d.v6.Render(snap)
	return n4 + n6, err
}

// BaselineApply times the IPv4 baseline only: the benchmark's Services are IPv4.
func (d *dualProxier) BaselineApply(ctx context.Context, snap *state.Snapshot) (time.Duration, error) {
	return d.v4.BaselineApply(ctx, snap)
}

// ipv6Config turns the IPv4 Config into the ip6tables Proxier's: no localnet rules (there
// is no route_localnet for IPv6, and kube-proxy serves no NodePorts on ::1).
func ipv6Config(c Config, be Backend) Config {
	c.Render.IPv6 = true
	c.Render.BlockLocalnet = false
	c.Runner = ExecRunner{Backend: be, IPv6: true}
	return c
}
