package trace

import (
	"fmt"
	"strings"
)

// iptDump is a parsed iptables-save text.
type iptDump struct {
	tables map[string]*iptTable
}

type iptTable struct {
	name   string
	chains map[string]*iptChain
}

type iptChain struct {
	name   string
	policy string // "ACCEPT"/"DROP" for built-in chains, "" for user chains
	rules  []*iptRule
}

type iptRule struct {
	line   int
	text   string
	conds  []iptCond
	target string
	isGoto bool
	// targetArgs holds the target's options: "--to-destination" → "10.0.0.1:80".
	targetArgs map[string]string
}

var builtinChains = map[string]bool{"PREROUTING": true, "INPUT": true, "FORWARD": true,
	"OUTPUT": true, "POSTROUTING": true}

// parseIptablesSave reads iptables-save output (with or without counters, with
// iptables-nft's warnings and any comment lines).
func parseIptablesSave(text string) (*iptDump, []string, error) {
	d := &iptDump{tables: map[string]*iptTable{}}
	var warn []string
	var cur *iptTable
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		n := i + 1
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "*"):
			name := line[1:]
			cur = d.tables[name]
			if cur == nil {
				cur = &iptTable{name: name, chains: map[string]*iptChain{}}
				d.tables[name] = cur
			}
		case line == "COMMIT":
			cur = nil
		case cur == nil:
			warn = append(warn, fmt.Sprintf("line %d: outside any table, ignored: %s", n, clip(line)))
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			ch := cur.chain(f[0])
			if len(f) > 1 && f[1] != "-" {
				ch.policy = f[1]
			}
		default:
			if strings.HasPrefix(line, "[") {
				// iptables-save -c: "[packets:bytes] -A CHAIN ..."
				if j := strings.IndexByte(line, ']'); j > 0 {
					line = strings.TrimSpace(line[j+1:])
				}
			}
			if !strings.HasPrefix(line, "-A ") {
				warn = append(warn, fmt.Sprintf("line %d: not a rule, ignored: %s", n, clip(line)))
				continue
			}
			r, chain, err := parseIptRule(line)
			if err != nil {
				return nil, warn, fmt.Errorf("line %d: %v", n, err)
			}
			r.line = n
			ch := cur.chain(chain)
			ch.rules = append(ch.rules, r)
		}
	}
	if len(d.tables) == 0 {
		return nil, warn, fmt.Errorf("no table (*nat, *filter, ...) found: not iptables-save output")
	}
	return d, warn, nil
}

func (t *iptTable) chain(name string) *iptChain {
	ch := t.chains[name]
	if ch == nil {
		ch = &iptChain{name: name}
		if builtinChains[name] {
			ch.policy = "ACCEPT"
		}
		t.chains[name] = ch
	}
	return ch
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// splitWords splits a rule the way xtables quotes it: words separated by blanks,
// double-quoted strings with backslash escapes.
func splitWords(s string) ([]string, error) {
	var out []string
	var b strings.Builder
	inWord, inQuote := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && (c == ' ' || c == '\t'):
			if inWord {
				out = append(out, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote")
	}
	if inWord {
		out = append(out, b.String())
	}
	return out, nil
}

// parseIptRule parses "-A CHAIN <matches> -j TARGET <target options>".
func parseIptRule(line string) (*iptRule, string, error) {
	w, err := splitWords(line)
	if err != nil {
		return nil, "", err
	}
	if len(w) < 2 {
		return nil, "", fmt.Errorf("rule without a chain")
	}
	r := &iptRule{text: line, targetArgs: map[string]string{}}
	chain := w[1]
	p := &ruleParser{words: w[2:], rule: r}
	if err := p.parse(); err != nil {
		return nil, "", fmt.Errorf("chain %s: %v", chain, err)
	}
	return r, chain, nil
}

type ruleParser struct {
	words  []string
	pos    int
	rule   *iptRule
	module string
	cur    moduleCond
	neg    bool
}

func (p *ruleParser) next() (string, bool) {
	if p.pos >= len(p.words) {
		return "", false
	}
	p.pos++
	return p.words[p.pos-1], true
}

// args takes the values of an option: every word up to the next option or "!".
func (p *ruleParser) args() []string {
	var out []string
	for p.pos < len(p.words) {
		w := p.words[p.pos]
		if w == "!" || (strings.HasPrefix(w, "-") && len(w) > 1 && !isNumber(w)) {
			break
		}
		out = append(out, w)
		p.pos++
	}
	return out
}

func isNumber(s string) bool {
	for i, c := range s {
		if !(c >= '0' && c <= '9') && !(i == 0 && c == '-') {
			return false
		}
	}
	return len(s) > 0
}

func (p *ruleParser) parse() error {
	for {
		w, ok := p.next()
		if !ok {
			return nil
		}
		if w == "!" {
			p.neg = true
			continue
		}
		neg := p.neg
		p.neg = false
		switch w {
		case "-j", "--jump", "-g", "--goto":
			t, ok := p.next()
			if !ok {
				return fmt.Errorf("%s without a target", w)
			}
			p.rule.target, p.rule.isGoto = t, w == "-g" || w == "--goto"
			p.targetOptions()
			return nil
		case "-m", "--match":
			m, ok := p.next()
			if !ok {
				return fmt.Errorf("-m without a module")
			}
			p.module = m
			p.cur = newModuleCond(m)
			p.rule.conds = append(p.rule.conds, p.cur)
		case "-s", "--source", "-d", "--destination", "-p", "--protocol",
			"-i", "--in-interface", "-o", "--out-interface":
			v, ok := p.next()
			if !ok {
				return fmt.Errorf("%s without a value", w)
			}
			c, err := basicCond(w, v, neg)
			if err != nil {
				return err
			}
			p.rule.conds = append(p.rule.conds, c)
		case "-f", "--fragment":
			p.rule.conds = append(p.rule.conds, fragmentCond{neg: neg})
		default:
			if !strings.HasPrefix(w, "--") {
				return fmt.Errorf("unexpected word %q", w)
			}
			var a []string
			if w == "--comment" {
				if v, ok := p.next(); ok {
					a = []string{v}
				}
			} else {
				a = p.args()
			}
			if err := p.moduleOption(w, a, neg); err != nil {
				return err
			}
		}
	}
}

func (p *ruleParser) targetOptions() {
	for {
		w, ok := p.next()
		if !ok {
			return
		}
		a := p.args()
		p.rule.targetArgs[w] = strings.Join(a, " ")
	}
}
