//go:build linux

package ebpf

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/benchcpu"
)

// BenchmarkConnect measures one blocking connect() of a fresh TCP socket (closed
// with RST), reporting the p50 as p50-ns: to the backend directly from outside the
// cgroup (no program), directly from inside it (connect4 runs, map miss), and to
// the Service address (translated), with 10 and 10,000 Services in the maps.
func BenchmarkConnect(b *testing.B) {
	e := newKenv(b)
	be := startBackend(b, "127.0.0.2")
	for _, n := range []int{10, 10000} {
		p := e.proxier(b)
		snap := manyServices(n-1, threeEps)
		addService(snap, svcSpec{name: "bench/target", vip: vip, port: 40080, eps: addrs(be)})
		mustSync(b, p, snap)
		svcAddr := netip.MustParseAddrPort(vip + ":40080")
		b.Run("services="+strconv.Itoa(n)+"/direct-no-bpf", func(b *testing.B) { connectLoop(b, be.ap) })
		e.inCgroup(func() {
			b.Run("services="+strconv.Itoa(n)+"/direct-in-cgroup", func(b *testing.B) { connectLoop(b, be.ap) })
			b.Run("services="+strconv.Itoa(n)+"/clusterip", func(b *testing.B) { connectLoop(b, svcAddr) })
		})
		_ = p.Cleanup(context.Background())
	}
}

func connectLoop(b *testing.B, to netip.AddrPort) {
	sa := &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()}
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		err = unix.Connect(fd, sa)
		ds = append(ds, time.Since(t0))
		if err != nil {
			b.Fatalf("connect %s: %v", to, err)
		}
		_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1})
		unix.Close(fd)
	}
	b.StopTimer()
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Nanoseconds()), "p50-ns")
}

// BenchmarkColdLoad10k is the first Sync of 10,000 Services x 3 endpoints into
// empty maps: render, diff and batched writes.
func BenchmarkColdLoad10k(b *testing.B) {
	e := newKenv(b)
	snap := manyServices(10000, threeEps)
	var cpu time.Duration
	for range b.N {
		b.StopTimer()
		p := e.proxier(b)
		b.StartTimer()
		c0 := benchcpu.Now()
		mustSync(b, p, snap)
		cpu += benchcpu.Now() - c0
		b.StopTimer()
		if p.table.Len() != 10000 || p.table.Slots() != 30000 {
			b.Fatalf("loaded %d services, %d slots", p.table.Len(), p.table.Slots())
		}
		_ = p.Cleanup(context.Background())
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkOneServiceChange10k is an incremental Sync that removes or adds back
// one endpoint of one Service with 10,000 Services loaded (including the socket
// destroy pass for the removed backend).
func BenchmarkOneServiceChange10k(b *testing.B) {
	e := newKenv(b)
	for _, destroy := range []bool{false, true} {
		b.Run("destroy="+strconv.FormatBool(destroy), func(b *testing.B) { oneServiceChange(b, e, destroy) })
	}
}

func oneServiceChange(b *testing.B, e *kenv, destroy bool) {
	snap := manyServices(10000, threeEps)
	p, err := NewProxier(Config{PinDir: e.pinDir, Cgroup: e.cgroup, DestroySockets: destroy})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = p.Cleanup(context.Background()) }()
	mustSync(b, p, snap)
	names := snap.SortedNames()
	cpu := startCPU()
	defer cpu.report(b)
	b.ResetTimer()
	for i := range b.N {
		name := names[(i/2)%len(names)]
		eps := threeEps(svcIndex(snap, name))
		if i%2 == 0 {
			eps = eps[:2]
		}
		snap.EndpointMap[name] = eps // the benchmark owns snap; Sync keeps no reference
		cs := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{name: {}}}
		if _, err := applyChanged(p, snap, cs); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	p.waitDestroy()
}

// cpuMeter reports the process's CPU time (user + system) per operation as
// cpu-ns/op: on a shared, overloaded machine wall time mostly measures waiting
// for a core, CPU time what the work costs.
type cpuMeter struct{ start time.Duration }

func startCPU() *cpuMeter { return &cpuMeter{start: benchcpu.Now()} }

func (m *cpuMeter) report(b *testing.B) {
	benchcpu.Report(b, m.start)
}

func svcIndex(s *state.Snapshot, n state.ServicePortName) int {
	a := s.ServiceMap[n].ClusterIPs[0].As4()
	return int(a[2])<<8 | int(a[3])
}
