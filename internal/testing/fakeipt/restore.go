package fakeipt

import (
	"fmt"
	"strconv"
	"strings"
)

// maxChainName is the longest chain name the kernel takes (XT_EXTENSION_MAXNAMELEN-1).
const maxChainName = 28

// knownTargets are the standard and extension targets a rule may jump to without a
// chain of that name.
var knownTargets = map[string]bool{
	"ACCEPT": true, "DROP": true, "RETURN": true, "QUEUE": true, "NFQUEUE": true,
	"REJECT": true, "DNAT": true, "SNAT": true, "MASQUERADE": true, "REDIRECT": true,
	"MARK": true, "CONNMARK": true, "LOG": true, "NFLOG": true, "NOTRACK": true, "CT": true,
	"TPROXY": true, "TCPMSS": true, "CLASSIFY": true, "CHECKSUM": true, "TRACE": true,
	"SET": true, "DSCP": true, "TOS": true, "TTL": true, "HL": true, "AUDIT": true,
}

// restoreRun is one Restore call being applied.
type restoreRun struct {
	r       *Runner
	noflush bool
	name    string // table of the open section, "" outside one
	cur     *table // working copy of that table
}

// apply runs input line by line; the caller holds r.mu.
func (r *Runner) apply(input string, noflush bool) error {
	run := &restoreRun{r: r, noflush: noflush}
	lines := strings.Split(input, "\n")
	for i, raw := range lines {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := run.line(line); err != nil {
			return fmt.Errorf("iptables-restore: line %d failed: %s", i+1, err)
		}
	}
	if run.name != "" {
		return fmt.Errorf("iptables-restore: COMMIT expected at line %d", len(lines))
	}
	return nil
}

func (run *restoreRun) line(line string) error {
	switch {
	case strings.HasPrefix(line, "*"):
		return run.begin(line[1:])
	case run.name == "":
		return fmt.Errorf("%q outside a table section", line)
	case line == "COMMIT":
		run.r.tables[run.name] = run.cur
		run.name, run.cur = "", nil
		return nil
	case strings.HasPrefix(line, ":"):
		return run.declare(line[1:])
	}
	args, err := tokenize(line)
	if err != nil {
		return err
	}
	return run.command(args)
}

func (run *restoreRun) begin(name string) error {
	if run.name != "" {
		return fmt.Errorf("table %s started before table %s was committed", name, run.name)
	}
	if _, ok := builtinChains[name]; !ok {
		return fmt.Errorf("table '%s' does not exist", name)
	}
	run.name = name
	if old := run.r.tables[name]; old != nil && run.noflush {
		run.cur = old.clone()
	} else {
		run.cur = newTable(name)
	}
	return nil
}

// declare handles ":NAME POLICY [p:b]": it sets a built-in chain's policy, and
// creates a user chain or, if it exists, flushes it (both with and without
// --noflush).
func (run *restoreRun) declare(rest string) error {
	f := strings.Fields(rest)
	if len(f) < 2 {
		return fmt.Errorf("malformed chain declaration %q", rest)
	}
	name, policy := f[0], f[1]
	if isBuiltin(run.name, name) {
		if policy != "-" {
			run.cur.chains[name].policy = policy
		}
		return nil
	}
	if policy != "-" {
		return fmt.Errorf("can't set policy `%s' on non-builtin chain `%s'", policy, name)
	}
	if err := validChainName(name); err != nil {
		return err
	}
	run.cur.chains[name] = &chain{policy: "-"}
	return nil
}

func validChainName(name string) error {
	if len(name) > maxChainName {
		return fmt.Errorf("chain name `%s' too long (must be under %d chars)", name, maxChainName+1)
	}
	if name == "" || strings.HasPrefix(name, "-") || strings.HasPrefix(name, "!") {
		return fmt.Errorf("invalid chain name `%s'", name)
	}
	return nil
}

func (run *restoreRun) command(args []string) error {
	cmd := args[0]
	var name string
	if len(args) > 1 {
		name = args[1]
	}
	rest := args[min(2, len(args)):]
	switch cmd {
	case "-A", "--append":
		return run.insert(name, -1, rest)
	case "-I", "--insert":
		pos := 1
		if len(rest) > 0 {
			if n, err := strconv.Atoi(rest[0]); err == nil {
				pos, rest = n, rest[1:]
			}
		}
		return run.insert(name, pos, rest)
	case "-D", "--delete":
		return run.delete(name, rest)
	case "-R", "--replace":
		return run.replace(name, rest)
	case "-N", "--new-chain":
		return run.newChain(name)
	case "-X", "--delete-chain":
		return run.deleteChain(name)
	case "-F", "--flush":
		return run.flush(name)
	case "-P", "--policy":
		return run.policy(name, rest)
	case "-Z", "--zero":
		return nil
	}
	return fmt.Errorf("unknown command %q", cmd)
}

func (run *restoreRun) chain(name string) (*chain, error) {
	c := run.cur.chains[name]
	if c == nil {
		return nil, fmt.Errorf("chain '%s' does not exist", name)
	}
	return c, nil
}

// insert puts the rule at 1-based position pos, or last when pos is -1.
func (run *restoreRun) insert(name string, pos int, spec []string) error {
	c, err := run.chain(name)
	if err != nil {
		return err
	}
	if err := run.r.family.check(spec); err != nil {
		return err
	}
	text, err := canonical(spec)
	if err != nil {
		return err
	}
	r := newRule(text)
	if t := r.target; t != "" && run.cur.chains[t] == nil && !knownTargets[t] {
		return fmt.Errorf("couldn't load target `%s':No such file or directory", t)
	}
	if pos == -1 {
		c.rules = append(c.rules, r)
		return nil
	}
	if pos < 1 || pos > len(c.rules)+1 {
		return fmt.Errorf("index of insertion too big (%d in chain %s of %d rules)", pos, name, len(c.rules))
	}
	c.rules = append(c.rules[:pos-1], append([]rule{r}, c.rules[pos-1:]...)...)
	return nil
}

// delete removes the first rule equal to spec, or the rule at a 1-based number.
func (run *restoreRun) delete(name string, spec []string) error {
	c, err := run.chain(name)
	if err != nil {
		return err
	}
	if len(spec) == 1 {
		if n, err := strconv.Atoi(spec[0]); err == nil {
			if n < 1 || n > len(c.rules) {
				return fmt.Errorf("index of deletion too big (%d in chain %s)", n, name)
			}
			c.rules = append(c.rules[:n-1], c.rules[n:]...)
			return nil
		}
	}
	text, err := canonical(spec)
	if err != nil {
		return err
	}
	for i, r := range c.rules {
		if r.spec == text {
			c.rules = append(c.rules[:i], c.rules[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("bad rule (does a matching rule exist in that chain?): -D %s %s", name, text)
}

// replace replaces the rule at a 1-based number (iptables -R CHAIN N spec).
func (run *restoreRun) replace(name string, args []string) error {
	c, err := run.chain(name)
	if err != nil {
		return err
	}
	var n int
	if len(args) > 0 {
		n, err = strconv.Atoi(args[0])
	}
	if len(args) == 0 || err != nil {
		return fmt.Errorf("-R %s needs a rule number", name)
	}
	if n < 1 || n > len(c.rules) {
		return fmt.Errorf("index of replacement too big (%d in chain %s)", n, name)
	}
	old := c.rules[n-1]
	c.rules = append(c.rules[:n-1], c.rules[n:]...)
	if err := run.insert(name, n, args[1:]); err != nil {
		c.rules = append(c.rules[:n-1], append([]rule{old}, c.rules[n-1:]...)...)
		return err
	}
	return nil
}

func (run *restoreRun) newChain(name string) error {
	if err := validChainName(name); err != nil {
		return err
	}
	if run.cur.chains[name] != nil {
		return fmt.Errorf("chain already exists: %s", name)
	}
	run.cur.chains[name] = &chain{policy: "-"}
	return nil
}

// deleteChain removes a user chain; like the kernel it refuses one that still has
// rules or that a rule jumps to. Without a name it deletes every user chain.
func (run *restoreRun) deleteChain(name string) error {
	if name == "" {
		for n := range run.cur.chains {
			if !isBuiltin(run.name, n) {
				if err := run.deleteChain(n); err != nil {
					return err
				}
			}
		}
		return nil
	}
	c, err := run.chain(name)
	if err != nil {
		return err
	}
	switch {
	case isBuiltin(run.name, name):
		return fmt.Errorf("can't delete built-in chain %s", name)
	case len(c.rules) > 0:
		return fmt.Errorf("can't delete chain %s: Directory not empty", name)
	case run.cur.references(name) > 0:
		return fmt.Errorf("can't delete chain %s: Too many links", name)
	}
	delete(run.cur.chains, name)
	return nil
}

func (run *restoreRun) flush(name string) error {
	if name == "" {
		for _, c := range run.cur.chains {
			c.rules = nil
		}
		return nil
	}
	c, err := run.chain(name)
	if err != nil {
		return err
	}
	c.rules = nil
	return nil
}

func (run *restoreRun) policy(name string, rest []string) error {
	if !isBuiltin(run.name, name) || len(rest) != 1 {
		return fmt.Errorf("bad policy for chain %s", name)
	}
	run.cur.chains[name].policy = rest[0]
	return nil
}
