//go:build linux

package userspace

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// relayChildEnv makes the test binary a relay process (TestMain): the value is
// "ADDR,BACKEND,MAXCONNS[,SENDBUFFER]" (SENDBUFFER replaces localSendBuffer). Benchmarks run the relay in a process of its own, as
// kproxy runs apart from its clients and endpoints, so that the relay's
// descriptors can be counted alone and its threads are scheduled as a daemon's.
const relayChildEnv = "KPROXY_USERSPACE_RELAY_CHILD"

const relayReady = "kproxy-relay-ready"

func TestMain(m *testing.M) {
	if spec := os.Getenv(relayChildEnv); spec != "" {
		if err := runRelayChild(spec); err != nil {
			fmt.Fprintln(os.Stderr, "relay child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if role := os.Getenv(benchRoleEnv); role != "" {
		if err := runBenchChild(role); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runRelayChild relays ADDR to BACKEND until its standard input closes.
func runRelayChild(spec string) (err error) {
	f := strings.Split(spec, ",")
	if len(f) == 4 {
		if localSendBuffer, err = strconv.Atoi(f[3]); err != nil {
			return err
		}
		f = f[:3]
	}
	if len(f) != 3 {
		return fmt.Errorf("%s=%q: want ADDR,BACKEND,MAXCONNS", relayChildEnv, spec)
	}
	addr, err := netip.ParseAddrPort(f[0])
	if err != nil {
		return err
	}
	backend, err := netip.ParseAddrPort(f[1])
	if err != nil {
		return err
	}
	maxConns, err := strconv.Atoi(f[2])
	if err != nil {
		return err
	}
	p, err := New(dataplane.Options{Config: &kpconfig.KubeProxyConfiguration{}, Registerer: prometheus.NewRegistry(),
		Relay: dataplane.RelayLimits{MaxConns: maxConns, MaxConnsPerClient: maxConns}})
	if err != nil {
		return err
	}
	p.enableMigrate = func() (bool, error) { return false, nil }
	s := newSvc("bench", v1.ProtocolTCP, addr.Addr(), int(addr.Port()), testBackend{addr: backend})
	sn := snap(state.NodeInfo{}, s)
	if _, err := coreFor(p).Sync(context.Background(), sn, allChanged(sn)); err != nil {
		return err
	}
	fmt.Println(relayReady)
	_, _ = io.Copy(io.Discard, os.Stdin)
	return p.Cleanup(context.Background())
}

// relayProcess is a relay in a child process.
type relayProcess struct {
	addr netip.AddrPort
	pid  int
}

// startRelayProcess runs a relay in front of backend in a child process (the test
// binary again) with a cap of maxConns connections (0: the default), and stops
// it when the benchmark ends. sendBuffer, when not negative, replaces
// localSendBuffer (0: the kernel's autotuning).
func startRelayProcess(t testing.TB, backend netip.AddrPort, maxConns, sendBuffer int) relayProcess {
	t.Helper()
	return startRelayProcessFrom(t, os.Args[0], backend, maxConns, sendBuffer)
}

// startRelayProcessFrom is startRelayProcess with the relay of bin, a test
// binary of this package (another build of it, to compare two versions).
func startRelayProcessFrom(t testing.TB, bin string, backend netip.AddrPort, maxConns, sendBuffer int) relayProcess {
	t.Helper()
	ip := randLoopback()
	addr := netip.AddrPortFrom(ip, uint16(freePort(t, "tcp", ip)))
	cmd := exec.Command(bin, "-test.run=^$")
	spec := fmt.Sprintf("%s,%s,%d", addr, backend, maxConns)
	if sendBuffer >= 0 {
		spec += "," + strconv.Itoa(sendBuffer)
	}
	cmd.Env = append(os.Environ(), relayChildEnv+"="+spec)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	r := bufio.NewReader(stdout)
	line, err := r.ReadString('\n')
	if strings.TrimSpace(line) != relayReady {
		t.Fatalf("relay process: %q, %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, r) }()
	return relayProcess{addr: addr, pid: cmd.Process.Pid}
}

// countFDs is the number of descriptors process pid holds.
func countFDs(t testing.TB, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
