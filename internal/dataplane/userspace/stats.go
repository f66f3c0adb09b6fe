package userspace

import (
	"sync"
	"sync/atomic"
	"time"

	"kproxy.dev/kproxy/internal/dataplane"
)

// counters are one backend's traffic totals. Relays add to them with atomics; the
// estimator turns them into rates. Packet counts are unknown in userspace: the
// kernel coalesces and splits segments under the relay.
type counters struct {
	conns    atomic.Uint64
	inBytes  atomic.Uint64 // client to endpoint
	outBytes atomic.Uint64 // endpoint to client

	// est is the rate state, made by the estimator once the backend had
	// traffic: most backends of a large cluster never have any, and the state
	// was half of each backend's memory.
	est atomic.Pointer[estimator]
}

// estimator is a backend's last sample and the rates computed from it.
type estimator struct {
	mu   sync.Mutex
	last sample
	rate rates
}

type sample struct {
	at                       time.Time
	conns, inBytes, outBytes uint64
}

type rates struct{ cps, inBPS, outBPS float64 }

func (c *counters) read(at time.Time) sample {
	return sample{at: at, conns: c.conns.Load(), inBytes: c.inBytes.Load(), outBytes: c.outBytes.Load()}
}

// estimate updates the rates from the change since the previous call, the way the
// kernel's IPVS estimator does every two seconds (without its smoothing: a rate here
// is the average over the last interval). A backend's first traffic is taken to
// have come within the last estimatorInterval.
func (c *counters) estimate(now time.Time) {
	cur := c.read(now)
	e := c.est.Load()
	if e == nil {
		if cur.conns == 0 && cur.inBytes == 0 && cur.outBytes == 0 {
			return // no traffic yet: no state
		}
		e = &estimator{last: sample{at: now.Add(-estimatorInterval)}}
		c.est.Store(e)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if dt := now.Sub(e.last.at).Seconds(); dt > 0 {
		e.rate = rates{
			cps:    float64(cur.conns-e.last.conns) / dt,
			inBPS:  float64(cur.inBytes-e.last.inBytes) / dt,
			outBPS: float64(cur.outBytes-e.last.outBytes) / dt,
		}
	}
	e.last = cur
}

// snapshot returns the counters and last rates as dataplane.Stats.
func (c *counters) snapshot() *dataplane.Stats {
	var r rates
	if e := c.est.Load(); e != nil {
		e.mu.Lock()
		r = e.rate
		e.mu.Unlock()
	}
	return &dataplane.Stats{
		Conns:    c.conns.Load(),
		InBytes:  c.inBytes.Load(),
		OutBytes: c.outBytes.Load(),
		CPS:      r.cps,
		InBPS:    r.inBPS,
		OutBPS:   r.outBPS,
	}
}

func addStats(sum, s *dataplane.Stats) {
	sum.Conns += s.Conns
	sum.InBytes += s.InBytes
	sum.OutBytes += s.OutBytes
	sum.CPS += s.CPS
	sum.InBPS += s.InBPS
	sum.OutBPS += s.OutBPS
}

// runEstimator updates rates and prunes affinity tables until Drain.
func (p *Proxier) runEstimator() {
	t := time.NewTicker(estimatorInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stopEst:
			return
		case now := <-t.C:
			p.estimate(now)
		}
	}
}

func (p *Proxier) estimate(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, fe := range p.frontends {
		cfg := fe.cfg.Load()
		if cfg == nil {
			continue
		}
		for _, set := range cfg.sets() {
			if set == nil {
				continue
			}
			for _, e := range set.byAddr {
				e.b.stats.estimate(now)
			}
			if set.affinity != nil {
				set.affinity.prune(now)
			}
		}
	}
}
