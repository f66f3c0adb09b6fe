package iptables

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/sysctl"
)

func fakeProcSys(t *testing.T) sysctl.Dir {
	d := t.TempDir()
	p := filepath.Join(d, "net/ipv4/conf/all")
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "route_localnet"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return sysctl.Dir(d)
}

// TestRouteLocalnetOnlyWithLoopbackNodePorts: route_localnet (and with it the
// blocking rule) only when NodePorts are served on 127.0.0.1.
func TestRouteLocalnetOnlyWithLoopbackNodePorts(t *testing.T) {
	for _, c := range []struct {
		name      string
		noLocal   bool
		addresses []string
		want      bool
	}{
		{"default: all addresses", false, nil, true},
		{"all keyword", false, []string{"all"}, true},
		{"localhost keyword", false, []string{"primary", "localhost"}, true},
		{"loopback CIDR", false, []string{"127.0.0.0/8"}, true},
		{"primary only", false, []string{"primary"}, false},
		{"node CIDR only", false, []string{"192.168.0.0/16"}, false},
		{"localhostNodePorts false", true, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			sys := fakeProcSys(t)
			cfg := Config{Render: RenderConfig{NoLocalhostNodePorts: c.noLocal}, NodePortAddresses: c.addresses}
			if err := enableLocalnet(sys, &cfg, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatal(err)
			}
			v, _ := sysctl.GetInt(sys, sysctlRouteLocalnet)
			if (v == 1) != c.want || cfg.Render.BlockLocalnet != c.want {
				t.Fatalf("route_localnet=%d BlockLocalnet=%v, want both %v", v, cfg.Render.BlockLocalnet, c.want)
			}
			rules := string(FullText(Render(snapshot(), cfg.Render)))
			if got := strings.Contains(rules, "block incoming localnet connections"); got != c.want {
				t.Fatalf("blocking rule rendered = %v, want %v:\n%s", got, c.want, rules)
			}
		})
	}
}

func TestRouteLocalnetBadAddressNamesEntry(t *testing.T) {
	cfg := Config{NodePortAddresses: []string{"primary", "nonsense"}}
	err := enableLocalnet(fakeProcSys(t), &cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "nodePortAddresses[1]") {
		t.Fatalf("err = %v, want one naming nodePortAddresses[1]", err)
	}
}

// TestBlockLocalnetRuleIsKubeProxys pins the rule text (as iptables-save prints it)
// and its hooks.
func TestBlockLocalnetRuleIsKubeProxys(t *testing.T) {
	want := `! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`
	if got := blockLocalnetRule(); got != want {
		t.Fatalf("rule\n%s\nwant\n%s", got, want)
	}
	r := renderFixed(RenderConfig{BlockLocalnet: true})
	hooks := map[string]bool{}
	for _, j := range r.Jumps {
		if j.Table == tableFilter && j.Spec == "-j KUBE-FIREWALL" {
			hooks[j.Chain] = true
		}
	}
	if !hooks["INPUT"] || !hooks["OUTPUT"] || len(hooks) != 2 {
		t.Fatalf("KUBE-FIREWALL hooked from %v, want INPUT and OUTPUT", hooks)
	}
}

func TestNoLocalhostNodePortsSkipsSelectedLoopback(t *testing.T) {
	cfg := testRenderConfig()
	cfg.NodePortAddresses = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.168.1.1")}
	for _, noLocal := range []bool{false, true} {
		cfg.NoLocalhostNodePorts = noLocal
		tail := strings.Join(nodePortTail(cfg), "\n")
		if got := strings.Contains(tail, "-d 127.0.0.1/32"); got == noLocal {
			t.Errorf("NoLocalhostNodePorts=%v: loopback NodePort rule present=%v\n%s", noLocal, got, tail)
		}
		if !strings.Contains(tail, "-d 192.168.1.1/32") {
			t.Errorf("node address rule missing:\n%s", tail)
		}
	}
}
