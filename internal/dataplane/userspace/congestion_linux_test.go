package userspace

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

const ccSysctl = "/proc/sys/net/ipv4/tcp_congestion_control"

// TestRelayLocalLegsDoNotPace runs in a network namespace of its own whose
// default congestion control is BBR, which paces. A loopback client and a client
// from a non-loopback address go through the relay to an endpoint on this node:
// the relay's sockets to the loopback client and to the endpoint use a
// congestion control that does not pace; the one to the other client keeps the
// namespace's default. Where the default does not pace, the relay changes
// nothing.
func TestRelayLocalLegsDoNotPace(t *testing.T) {
	if !inOwnNetns(t, "cc", nil) {
		return
	}
	if err := os.WriteFile(ccSysctl, []byte("bbr"), 0o644); err != nil {
		t.Fatalf("making BBR the namespace's default: %v", err)
	}
	const remote = "10.99.0.1"
	if out, err := exec.Command("ip", "addr", "add", remote+"/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v: %s", err, out)
	}
	backend := startTCPBackend(t, "A")
	ip := randLoopback()
	s := newSvc("cc", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), backend)
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))

	local := askVia(t, s.addr().String(), nil)
	defer local.Close()
	far := askVia(t, s.addr().String(), &net.TCPAddr{IP: net.ParseIP(remote)})
	defer far.Close()

	want := map[string]string{
		backend.addr.String():      "cubic",
		local.LocalAddr().String(): "cubic",
		far.LocalAddr().String():   "bbr",
	}
	var got []string
	for _, sock := range relaySockets(p) {
		var cc string
		onFD(t, sock, func(fd int) (err error) {
			cc, err = unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION)
			return err
		})
		peer := sock.RemoteAddr().String()
		got = append(got, peer+" "+cc)
		if cc != want[peer] {
			t.Errorf("relay socket to %s: congestion control %q, want %q", peer, cc, want[peer])
		}
	}
	if len(got) != 4 {
		t.Errorf("the relay holds %d sockets, want 4: %v", len(got), got)
	}

	// Where the default does not pace there is nothing to choose. (Outside the
	// initial namespace only an allowed congestion control may become the
	// default, and reno always is.)
	if err := os.WriteFile(ccSysctl, []byte("reno"), 0o644); err != nil {
		t.Fatal(err)
	}
	if cg := probeCongestion(); cg != (congestion{def: "reno"}) {
		t.Errorf("with reno the default: %+v, want the default alone", cg)
	}
}

// askVia connects to addr (from laddr, when not nil) and reads the endpoint's
// name through the relay.
func askVia(t *testing.T, addr string, laddr *net.TCPAddr) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if laddr != nil {
		d.LocalAddr = laddr
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "A\n" {
		t.Fatalf("endpoint answered %q, %v", line, err)
	}
	return c
}

// TestLocalCongestionChoice: cubic where it may be set, reno where it may not (an
// unprivileged process, cubic not in net.ipv4.tcp_allowed_congestion_control),
// nothing where the default does not pace or neither can be set.
func TestLocalCongestionChoice(t *testing.T) {
	allow := func(ok ...string) func(string) error {
		return func(cc string) error {
			for _, o := range ok {
				if cc == o {
					return nil
				}
			}
			return unix.EPERM
		}
	}
	for _, tc := range []struct {
		def     string
		allowed []string
		want    string
	}{
		{"bbr", []string{"cubic", "reno"}, "cubic"},
		{"bbr", []string{"reno"}, "reno"},
		{"bbr2", []string{"reno"}, "reno"},
		{"bbr", nil, ""},
		{"cubic", []string{"cubic", "reno"}, ""},
		{"reno", []string{"cubic", "reno"}, ""},
	} {
		if got := localCongestion(tc.def, allow(tc.allowed...)); got != tc.want {
			t.Errorf("default %s, allowed %v: %q, want %q", tc.def, tc.allowed, got, tc.want)
		}
	}
}
