//go:build linux

package fakeipvs

import (
	"context"
	"errors"
	"strings"
	"sync"

	"kproxy.dev/kproxy/internal/testing/fakeipt"
)

// Iptables is the per-family iptables of IPVS mode on two fakeipt runners: Restore
// is `iptables-restore --noflush`, Save is iptables-save of every table, and
// EnsureRule/DeleteRule are `iptables -C/-I/-D`. The zero value is not usable: call
// NewIptables.
type Iptables struct {
	V4, V6 *fakeipt.Runner
	mu     sync.Mutex
	ensure int
}

// NewIptables returns empty tables for both families.
func NewIptables() *Iptables {
	return &Iptables{V4: fakeipt.New(), V6: fakeipt.New()}
}

// Family returns one family's runner.
func (t *Iptables) Family(v6 bool) *fakeipt.Runner {
	if v6 {
		return t.V6
	}
	return t.V4
}

// Restore feeds iptables-restore --noflush.
func (t *Iptables) Restore(ctx context.Context, v6 bool, text string) error {
	return t.Family(v6).Restore(ctx, []byte(text), true)
}

// Save returns iptables-save output of every table.
func (t *Iptables) Save(ctx context.Context, v6 bool) (string, error) {
	out, err := t.Family(v6).Save(ctx, "")
	return string(out), err
}

// EnsureRule inserts the rule at the top of chain unless it exists.
func (t *Iptables) EnsureRule(_ context.Context, v6 bool, table, chain string, args []string) error {
	t.mu.Lock()
	t.ensure++
	t.mu.Unlock()
	r := t.Family(v6)
	err := r.Exec(table, append([]string{"-C", chain}, args...)...)
	if !errors.Is(err, fakeipt.ErrNoRule) {
		return err
	}
	return r.Exec(table, append([]string{"-I", chain}, args...)...)
}

// DeleteRule deletes every copy of the rule; an absent rule is fine.
func (t *Iptables) DeleteRule(_ context.Context, v6 bool, table, chain string, args []string) error {
	r := t.Family(v6)
	for {
		if r.Exec(table, append([]string{"-D", chain}, args...)...) != nil {
			return nil
		}
	}
}

// EnsureCalls counts EnsureRule calls.
func (t *Iptables) EnsureCalls() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ensure
}

// UsesSet reports whether a rule of either family matches the ipset (for
// IPSet.InUse).
func (t *Iptables) UsesSet(name string) bool {
	for _, r := range []*fakeipt.Runner{t.V4, t.V6} {
		for _, l := range strings.Split(r.Dump(), "\n") {
			if strings.HasPrefix(l, "-A ") && strings.Contains(l+" ", " --match-set "+name+" ") {
				return true
			}
		}
	}
	return false
}

// Node bundles the fakes of one node, wired together: an ipset a rule matches
// cannot be destroyed.
type Node struct {
	IPVS     *IPVS
	Links    *Links
	IPSet    *IPSet
	Iptables *Iptables
	Sysctl   *Sysctl
}

// NewNode returns an empty node with IP forwarding on.
func NewNode() *Node {
	n := &Node{IPVS: NewIPVS(), Links: &Links{}, IPSet: &IPSet{}, Iptables: NewIptables(),
		Sysctl: NewSysctl(map[string]string{"net/ipv4/ip_forward": "1"})}
	n.IPSet.InUse = n.Iptables.UsesSet
	return n
}

// Dump prints everything the node holds, stably: IPVS, the addresses of every link
// named, the ipsets and both families' iptables.
func (n *Node) Dump(links ...string) string {
	var b strings.Builder
	b.WriteString("# ipvs\n" + n.IPVS.Dump())
	for _, l := range links {
		addrs, _ := n.Links.Addrs(l)
		b.WriteString("# link " + l + "\n")
		for _, a := range addrs {
			b.WriteString(a.String() + "\n")
		}
	}
	sets, _ := n.IPSet.Save(context.Background())
	b.WriteString("# ipset\n" + sets)
	b.WriteString("# iptables\n" + n.Iptables.V4.Dump())
	b.WriteString("# ip6tables\n" + n.Iptables.V6.Dump())
	return b.String()
}
