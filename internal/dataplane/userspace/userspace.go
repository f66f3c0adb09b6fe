// Package userspace is the "userspace" proxy mode: kproxy relays every Service's TCP
// connections and UDP flows itself, in Go, without kernel NAT. It listens on each
// ClusterIP, externalIP, load-balancer IP and node address (NodePort) of every
// ServicePort and forwards each new connection to an endpoint chosen by the
// ServicePort's scheduler (internal/lb), so it works on any Linux machine, without
// iptables, IPVS or nftables, and without root as long as the Service addresses are
// local (loopback, or addresses the node already has).
//
// See README.md in this directory for the layout of listeners and relays.
package userspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/lb"
	"kproxy.dev/kproxy/internal/nodeaddr"
	"kproxy.dev/kproxy/internal/state"
)

// ModeName is the --proxy-mode value of this dataplane.
const ModeName = "userspace"

const (
	// DrainTimeout bounds how long Drain waits for open connections on shutdown.
	DrainTimeout = 30 * time.Second
	// defaultUDPIdleTimeout ends a UDP flow that saw no packet in either direction,
	// like conntrack's unreplied-UDP timeout.
	defaultUDPIdleTimeout = 30 * time.Second
	// dialTimeout bounds one attempt to reach an endpoint; a failed attempt moves on
	// to another endpoint.
	dialTimeout = 2 * time.Second
	// hostAddrTTL is how long the host's address list is trusted before a Sync
	// reads it again (full syncs and Node changes always read it): addresses that
	// appear on the node are served as NodePort addresses within this time.
	hostAddrTTL = 30 * time.Second
	// estimatorInterval is how often rates are computed, as the kernel's IPVS
	// estimator does.
	estimatorInterval = 2 * time.Second
)

func init() {
	dataplane.Register(dataplane.Mode{Name: ModeName, New: newDataplane, Cleanup: cleanupLeftovers})
}

func newDataplane(o dataplane.Options) (dataplane.Programmer, error) { return New(o) }

// Proxier is the userspace dataplane. It implements dataplane.Dataplane and
// dataplane.Lister.
type Proxier struct {
	log          *slog.Logger
	opts         dataplane.Options
	defaultSched string
	udpIdle      time.Duration
	addrs        addrManager
	metrics      *metrics
	// localAddrs reads the addresses the process can listen on; a variable for tests.
	localAddrs func() ([]netip.Addr, error)
	// listen opens a frontend's socket; benchmarks of the choice path replace it.
	listen func(fe *frontend) error

	// mu serialises Sync, List, Drain and Cleanup; the relays never take it.
	mu        sync.Mutex
	services  map[state.ServicePortName]*service
	frontends map[feKey]*frontend
	// failed holds ServicePorts whose last sync failed; every Sync retries them.
	failed map[state.ServicePortName]struct{}
	// needFull forces the next Sync to look at every ServicePort.
	needFull bool
	// listeners counts the frontends holding a socket; budget bounds it (0: no
	// bound) below nofile, the descriptor limit (budget.go).
	listeners, budget int
	nofile            uint64
	// draining are frontends that were closed while relays were still open; the
	// addresses kproxy added for them are released when those relays end.
	draining []*frontend
	// hostLocal is the set of the host's addresses, read at hostAt. It is a set,
	// and not read on every Sync, because a node whose ClusterIPs kproxy put on lo
	// has as many addresses as Services: reading 10,000 took 25-60 ms.
	hostLocal map[netip.Addr]bool
	hostAt    time.Time
	nodeAddrs []netip.Addr
	// classify tells in-cluster clients from outside ones (classify.go).
	classify classifier
	// ourAddrs counts the frontends using each address kproxy added to the host.
	ourAddrs map[netip.Addr]int
	// leftovers are addresses an earlier kproxy added (the daemon keeps them on
	// exit so a restart does not interrupt traffic); the first Sync reuses those
	// still wanted and removes the rest.
	// nil until the first Sync has looked for them.
	leftovers map[netip.Addr]bool

	// relays counts accept loops and open relays, so Drain knows when all are done.
	relays  sync.WaitGroup
	conns   connSet
	closed  atomic.Bool
	stopEst chan struct{}

	// The relay's bounds (limits.go): caps, idle timeout, their metrics, and the
	// rate-limited log of relay failures.
	limits       limits
	admission    *admission
	relayMetrics *relayMetrics
	causes       *causeLog
	// stopped is set when the listeners close at the end of a drain.
	stopped atomic.Bool
	// enableMigrate sets net.ipv4.tcp_migrate_req before a drain closes the
	// listeners (tests that run outside their own namespace replace it).
	enableMigrate func() (bool, error)
	// lastAccept is when the last TCP connection was accepted (UnixNano): a drain
	// ends early once no connection is open and none came for drainQuiet.
	lastAccept atomic.Int64
	// accepts watches the idle TCP listeners (acceptpoll_linux.go); nil until
	// the first listener.
	accepts *acceptPoller
	// pipes lends the relays their splice pipes (Linux; shared by every Proxier
	// unless a test gives one its own).
	pipes *pipePool
}

// New builds the userspace dataplane. It fails when the node default scheduler
// (ipvs.scheduler) is unknown.
func New(o dataplane.Options) (*Proxier, error) {
	def := "rr"
	if o.Config != nil && o.Config.IPVS.Scheduler != "" {
		def = o.Config.IPVS.Scheduler
	}
	if err := lb.Validate(def, nil); err != nil {
		return nil, fmt.Errorf("ipvs.scheduler: %v", err)
	}
	var cidrs []netip.Prefix
	if o.Config != nil {
		var err error
		if cidrs, err = parseClusterCIDRs(o.Config.ClusterCIDR); err != nil {
			return nil, err
		}
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	nofile := nofileLimit()
	lim := resolveLimits(o.Relay, nofile)
	adm := newAdmission(lim)
	rm, err := newRelayMetrics(o.Registerer, func() float64 { return float64(adm.open()) })
	if err != nil {
		return nil, err
	}
	p := &Proxier{
		log:          o.Log().With("mode", ModeName),
		opts:         o,
		defaultSched: def,
		udpIdle:      defaultUDPIdleTimeout,
		addrs:        newAddrManager(os.Geteuid() == 0),
		metrics:      m,
		localAddrs:   nodeaddr.LocalAddresses,
		services:     map[state.ServicePortName]*service{},
		frontends:    map[feKey]*frontend{},
		failed:       map[state.ServicePortName]struct{}{},
		needFull:     true,
		ourAddrs:     map[netip.Addr]int{},
		conns:        connSet{m: map[closer]struct{}{}},
		stopEst:      make(chan struct{}),
		limits:       lim,
		admission:    adm,
		relayMetrics: rm,
		causes:       newCauseLog(o.Log().With("mode", ModeName)),
		pipes:        &pipes,
		nofile:       nofile,
		budget:       listenerBudget(nofile),
	}
	p.log.Info("userspace relay limits", "maxConns", lim.maxConns, "maxConnsPerClient", lim.perClient,
		"idleTimeout", lim.idle, "note", "0 means no limit")
	if def, local := congestionChoice(); local != "" {
		p.log.Info("relay sockets to peers on this node use a congestion control that does not pace",
			"congestionControl", local, "default", def)
	}
	p.classify.clusterCIDRs, p.classify.loopback = cidrs, true
	p.listen = p.listenSocket
	p.enableMigrate = enableMigrateReq
	go p.runEstimator()
	return p, nil
}

var (
	_ dataplane.Programmer = (*Proxier)(nil)
	_ dataplane.Lister     = (*Proxier)(nil)
	_ dataplane.Drainer    = (*Proxier)(nil)
)

// errClosed is returned by Sync after Drain or Cleanup.
var errClosed = errors.New("userspace dataplane is shut down")

// Drain keeps accepting connections until no TCP connection has been open for
// drainQuiet or five sixths of its time have passed (DrainTimeout, or less when
// ctx ends sooner), then closes the listeners and gives the open relays the rest
// of the time; relays still open then are closed. The daemon calls it on SIGTERM.
// Listeners share their address with a successor (SO_REUSEPORT, drain.go),
// and the drain ends early once one listens on every TCP address.
func (p *Proxier) Drain(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.drainLocked(ctx, true)
}

func (p *Proxier) drainLocked(ctx context.Context, keepAccepting bool) error {
	if p.closed.Swap(true) {
		return nil
	}
	close(p.stopEst)
	start := time.Now()
	end := start.Add(DrainTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(end) {
		end = d
	}
	if keepAccepting {
		p.handOver(p.awaitQuiet(ctx, end.Add(-end.Sub(start)/6)))
	}
	p.stopped.Store(true)
	p.closeAccepts()
	for _, fe := range p.frontends {
		fe.close()
	}
	done := make(chan struct{})
	go func() { p.relays.Wait(); close(done) }()
	timer := time.NewTimer(time.Until(end))
	defer timer.Stop()
	var err error
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = fmt.Errorf("userspace: %d connections still open after %v", p.conns.len(), end.Sub(start).Round(time.Millisecond))
	}
	p.conns.closeAll()
	<-done
	return err
}

// Cleanup drains (see Drain) and removes every address kproxy added for Services.
func (p *Proxier) Cleanup(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.drainLocked(ctx, false)
	for k, fe := range p.frontends {
		p.releaseAddr(fe)
		delete(p.frontends, k)
	}
	for _, fe := range p.draining {
		p.releaseAddr(fe)
	}
	p.draining = nil
	for n, svc := range p.services {
		p.metrics.forgetService(svc)
		delete(p.services, n)
	}
	return errors.Join(err, p.addrs.cleanup())
}
