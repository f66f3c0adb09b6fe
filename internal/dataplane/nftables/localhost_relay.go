package nftables

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/nodeaddr"
)

// FeatureLocalhostNodePorts is kube-proxy 1.37's alpha gate for localhost NodePorts
// in nftables mode (KEP-6032).
const FeatureLocalhostNodePorts = "KubeProxyNFTablesLocalhostNodePorts"

// relayDialTimeout is how long a relayed connection waits for its endpoint, as
// kube-proxy's relay (no retry on another endpoint).
const relayDialTimeout = 5 * time.Second

// LocalhostRelay serves TCP NodePorts on 127.0.0.1 and ::1 with a userspace relay,
// as kube-proxy 1.37 does in nftables mode (KEP-6032): the nftables rules never
// DNAT loopback (that would need route_localnet), so a listener per NodePort
// accepts there and copies bytes to an endpoint. UDP and SCTP are not relayed.
// eTP Local relays only to local endpoints (no listener without one); ClientIP
// affinity pins every relayed connection of the port to one endpoint.
//
// The core calls Update after each successful sync and Close on cleanup.
type LocalhostRelay struct {
	// Addrs are the loopback addresses served (127.0.0.1, ::1).
	Addrs []netip.Addr
	// Listen and Dial default to the net package; tests run them in a namespace.
	Listen func(network, addr string) (net.Listener, error)
	Dial   func(network, addr string, timeout time.Duration) (net.Conn, error)
	Log    *slog.Logger

	listenersGauge *prometheus.GaugeVec
	failures       *prometheus.CounterVec

	mu        sync.Mutex
	listeners map[netip.AddrPort]*relayListener
}

type relayListener struct {
	l        net.Listener
	mu       sync.Mutex
	eps      []netip.AddrPort
	affinity bool
	conns    map[net.Conn]struct{}
}

// NewLocalhostRelay returns the relay when the gate is on and nodePortAddresses
// explicitly names loopback ("localhost" or a loopback CIDR; "all" does not
// count), else nil. Its metrics are registered on reg.
func NewLocalhostRelay(c *kpconfig.KubeProxyConfiguration, reg prometheus.Registerer, log *slog.Logger) (*LocalhostRelay, error) {
	if c == nil || !c.FeatureGates[FeatureLocalhostNodePorts] {
		return nil, nil
	}
	named, err := nodeaddr.NamesLoopback(c.NodePortAddresses)
	if err != nil || !named {
		return nil, err
	}
	f, _ := nodeaddr.Parse(c.NodePortAddresses)
	var addrs []netip.Addr
	for _, a := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()} {
		if f.Localhost || containsAddr(f.CIDRs, a) {
			addrs = append(addrs, a)
		}
	}
	r := &LocalhostRelay{Addrs: addrs, Log: log}
	r.registerMetrics(reg)
	return r, nil
}

func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (r *LocalhostRelay) registerMetrics(reg prometheus.Registerer) {
	r.listenersGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "kubeproxy",
		Name: "nftables_localhost_nodeport_listeners", Help: "Number of localhost NodePort listeners"}, []string{"ip_family"})
	r.failures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kubeproxy",
		Name: "nftables_localhost_nodeport_listener_creation_failures_total",
		Help: "Cumulative localhost NodePort listeners that could not be created"}, []string{"ip_family"})
	if reg != nil {
		reg.MustRegister(r.listenersGauge, r.failures)
	}
}

func ipFamily(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// relayTargets lists, per loopback listen address, the endpoints of every TCP
// NodePort the relay serves.
func (r *LocalhostRelay) relayTargets(req *dataplane.Request) map[netip.AddrPort]relayTarget {
	snap := req.Snapshot
	out := map[netip.AddrPort]relayTarget{}
	for n, sp := range snap.All() {
		if sp.Protocol != v1.ProtocolTCP || sp.NodePort == 0 || !sp.ExternallyAccessible() {
			continue
		}
		cat := req.Endpoints(n)
		eps := cat.Cluster
		if sp.ExternalPolicyLocal {
			eps = cat.Local
		}
		for _, a := range r.Addrs {
			t := relayTarget{affinity: sp.AffinityTimeout > 0}
			for _, e := range eps {
				if e.IP.Is4() == a.Is4() {
					t.eps = append(t.eps, e.AddrPort())
				}
			}
			if len(t.eps) > 0 {
				out[netip.AddrPortFrom(a, uint16(sp.NodePort))] = t
			}
		}
	}
	return out
}

type relayTarget struct {
	eps      []netip.AddrPort
	affinity bool
}

// Update opens listeners for new NodePorts, closes those without endpoints and
// updates the endpoints of the rest. A port that cannot be opened (something else
// listens there) is logged and counted; the others still open.
func (r *LocalhostRelay) Update(req *dataplane.Request) error {
	if r == nil {
		return nil
	}
	want := r.relayTargets(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.listeners == nil {
		r.listeners = map[netip.AddrPort]*relayListener{}
	}
	for ap, rl := range r.listeners {
		if _, ok := want[ap]; !ok {
			rl.close()
			delete(r.listeners, ap)
		}
	}
	var errs []error
	for ap, t := range want {
		rl, ok := r.listeners[ap]
		if !ok {
			var err error
			if rl, err = r.open(ap); err != nil {
				r.failures.WithLabelValues(ipFamily(ap.Addr())).Inc()
				errs = append(errs, err)
				continue
			}
			r.listeners[ap] = rl
		}
		rl.mu.Lock()
		rl.eps, rl.affinity = t.eps, t.affinity
		rl.mu.Unlock()
	}
	count := map[string]int{"IPv4": 0, "IPv6": 0}
	for ap := range r.listeners {
		count[ipFamily(ap.Addr())]++
	}
	for fam, n := range count {
		r.listenersGauge.WithLabelValues(fam).Set(float64(n))
	}
	return errors.Join(errs...)
}

func (r *LocalhostRelay) open(ap netip.AddrPort) (*relayListener, error) {
	listen := r.Listen
	if listen == nil {
		listen = net.Listen
	}
	l, err := listen("tcp", ap.String())
	if err != nil {
		return nil, err
	}
	rl := &relayListener{l: l, conns: map[net.Conn]struct{}{}}
	go r.accept(rl)
	return rl, nil
}

func (r *LocalhostRelay) accept(rl *relayListener) {
	for {
		c, err := rl.l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && r.Log != nil {
				r.Log.Warn("localhost NodePort relay: accept", "address", rl.l.Addr().String(), "err", err)
			}
			return
		}
		go r.relay(rl, c)
	}
}

func (rl *relayListener) pick() (netip.AddrPort, bool) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if len(rl.eps) == 0 {
		return netip.AddrPort{}, false
	}
	if rl.affinity {
		return rl.eps[0], true
	}
	return rl.eps[rand.IntN(len(rl.eps))], true
}

func (rl *relayListener) track(c net.Conn, add bool) bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.conns == nil {
		return false // closed
	}
	if add {
		rl.conns[c] = struct{}{}
	} else {
		delete(rl.conns, c)
	}
	return true
}

func (r *LocalhostRelay) relay(rl *relayListener, client net.Conn) {
	defer client.Close()
	ep, ok := rl.pick()
	if !ok || !rl.track(client, true) {
		return
	}
	defer rl.track(client, false)
	dial := r.Dial
	if dial == nil {
		dial = net.DialTimeout
	}
	up, err := dial("tcp", ep.String(), relayDialTimeout)
	if err != nil {
		return // the client sees the connection close, as with kube-proxy's relay
	}
	defer up.Close()
	if !rl.track(up, true) {
		return
	}
	defer rl.track(up, false)
	done := make(chan struct{}, 2)
	half := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go half(up, client)
	go half(client, up)
	<-done
	<-done
}

func (rl *relayListener) close() {
	rl.l.Close()
	rl.mu.Lock()
	conns := rl.conns
	rl.conns = nil
	rl.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// Close stops every listener and closes the relayed connections.
func (r *LocalhostRelay) Close(context.Context) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for ap, rl := range r.listeners {
		rl.close()
		delete(r.listeners, ap)
	}
	for _, fam := range []string{"IPv4", "IPv6"} {
		r.listenersGauge.WithLabelValues(fam).Set(0)
	}
	return nil
}
