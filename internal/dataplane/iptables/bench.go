package iptables

import (
	"context"
	"fmt"
	"time"

	"kproxy.dev/kproxy/internal/state"
)

// Render renders the whole ruleset without touching the kernel and returns the
// number of rules (for `kproxy bench sync`).
func (p *Proxier) Render(snap *state.Snapshot) (int, error) {
	r := Render(snap, p.c.Render)
	n := 0
	for _, c := range r.RuleCounts() {
		n += c
	}
	return n, nil
}

// BaselineApply empties the filter and nat tables, then times a plain
// iptables-restore (no --noflush) of the same ruleset: the reference kproxy's own
// cold sync is compared with. The next Apply is a full one.
func (p *Proxier) BaselineApply(ctx context.Context, snap *state.Snapshot) (time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.synced = false
	cfg, err := p.renderConfig(snap)
	if err != nil {
		return 0, err
	}
	text := FullText(Render(snap, cfg))
	if err := p.c.Runner.Restore(ctx, []byte("*filter\nCOMMIT\n*nat\nCOMMIT\n"), false); err != nil {
		return 0, fmt.Errorf("iptables baseline: emptying tables: %w", err)
	}
	start := time.Now()
	if err := p.c.Runner.Restore(ctx, text, false); err != nil {
		return 0, fmt.Errorf("iptables baseline: %w", err)
	}
	return time.Since(start), nil
}
