//go:build linux

package userspace

import (
	"bufio"
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

// TestRestartHandoffRefusesNothing is a restart: a second relay binds the same
// Service address (SO_REUSEPORT) while the first drains, and a client connecting
// all along sees no refusal or reset. It runs in a namespace of its own because
// Drain sets the namespace's net.ipv4.tcp_migrate_req.
func TestRestartHandoffRefusesNothing(t *testing.T) {
	if !inOwnNetns(t, "handoff", nil) {
		return
	}
	if _, err := os.Stat(migrateReqSysctl); err != nil {
		t.Skipf("kernel without tcp_migrate_req (Linux 5.14+): %v", err)
	}
	ip := randLoopback()
	port := freePort(t, "tcp", ip)
	old, _ := testProxier(t, nil)
	old.enableMigrate = enableMigrateReq // a namespace of its own
	next, _ := testProxier(t, nil)
	sOld := newSvc("web", v1.ProtocolTCP, ip, port, startTCPBackend(t, "old"))
	sNext := newSvc("web", v1.ProtocolTCP, ip, port, startTCPBackend(t, "next"))
	snOld := snap(state.NodeInfo{}, sOld)
	mustSync(t, old, snOld, allChanged(snOld))

	var mu sync.Mutex
	seen := map[string]int{}
	var failures []string
	stop := make(chan struct{})
	done := make(chan struct{})
	var clients sync.WaitGroup
	for range 8 { // clients connecting as fast as they can, all along
		clients.Add(1)
		go func() {
			defer clients.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				name, err := oneExchange(sOld.addr())
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
				} else {
					seen[name]++
				}
				mu.Unlock()
			}
		}()
	}
	go func() { clients.Wait(); close(done) }()
	count := func(name string) int { mu.Lock(); defer mu.Unlock(); return seen[name] }
	eventually(t, "connections through the old relay", func() bool { return count("old") > 50 })
	snNext := snap(state.NodeInfo{}, sNext)
	mustSync(t, next, snNext, allChanged(snNext)) // the successor binds the same address
	eventually(t, "connections through the successor", func() bool { return count("next") > 50 })
	// Traffic never stops, so the old relay is never quiet: it must see the
	// successor's listeners and hand over.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	drainStart := time.Now()
	if err := old.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if took := time.Since(drainStart); took > 5*time.Second {
		t.Fatalf("Drain took %v with a successor listening; want it to hand over at once", took)
	}
	if got, _ := os.ReadFile(migrateReqSysctl); strings.TrimSpace(string(got)) != "1" {
		t.Fatalf("tcp_migrate_req = %q after a handover, want 1", got)
	}
	before := count("next")
	eventually(t, "more connections after the drain", func() bool { return count("next") > before+200 })
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	t.Logf("connections: %v, failed: %d", seen, len(failures))
	if len(failures) > 0 {
		t.Fatalf("%d of %d connections failed during the handoff, first: %s",
			len(failures), len(failures)+seen["old"]+seen["next"], failures[0])
	}
}

// oneExchange connects, reads the backend's name and closes.
func oneExchange(addr interface{ String() string }) (string, error) {
	c, err := net.DialTimeout("tcp", addr.String(), 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(line), nil
}
