package fakeipt

import (
	"errors"
	"fmt"
)

// ErrNoRule is what Exec returns for `-C` when the rule is absent (iptables exits 1).
var ErrNoRule = errors.New("iptables: Bad rule (does a matching rule exist in that chain?)")

// Exec runs one iptables command line against a table, as `iptables -t table args...`
// does: -C (check), -A, -I, -D, -N, -X, -F, -P, -Z. The change takes effect at once
// or, on error, not at all.
func (r *Runner) Exec(tbl string, args ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(args) == 0 {
		return fmt.Errorf("iptables: no command")
	}
	run := &restoreRun{r: r, noflush: true}
	if err := run.begin(tbl); err != nil {
		return fmt.Errorf("iptables: %s", err)
	}
	if args[0] == "-C" || args[0] == "--check" {
		return run.check(args[1:])
	}
	if err := run.command(args); err != nil {
		return fmt.Errorf("iptables: %s", err)
	}
	r.tables[tbl] = run.cur
	return nil
}

func (run *restoreRun) check(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("iptables: -C needs a chain")
	}
	c, err := run.chain(args[0])
	if err != nil {
		return fmt.Errorf("iptables: %s", err)
	}
	text, err := canonical(args[1:])
	if err != nil {
		return fmt.Errorf("iptables: %s", err)
	}
	for _, r := range c.rules {
		if r.spec == text {
			return nil
		}
	}
	return ErrNoRule
}
