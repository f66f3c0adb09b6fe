package trace

import (
	"fmt"
	"strconv"
	"strings"
)

// nftRuleset is a parsed `nft list ruleset` (or `nft list table`) text.
type nftRuleset struct {
	tables []*nftTable
}

type nftTable struct {
	family, name string
	chains       map[string]*nftChain
	sets         map[string]*nftSet
}

type nftChain struct {
	table    *nftTable
	name     string
	hook     string // "" for regular chains
	kind     string // filter, nat, route
	priority int
	policy   string
	rules    []*nftRule
}

type nftRule struct {
	line    int
	handle  uint64
	text    string
	stmts   []nftStmt
	problem string // set when the rule could not be parsed
}

type nftSet struct {
	name     string
	isMap    bool
	timeout  string
	elements []nftElement
	// raw holds the elements of a set read over netlink until a rule's lookup
	// says what its key fields are (netlink does not say it reliably).
	raw *rawSet
}

// rawSet is a set's elements as netlink bytes.
type rawSet struct {
	interval   bool
	verdictMap bool
	keyTypes   []string // from the set's declared type, when known
	elems      []rawElem
	decoded    bool
}

type rawElem struct {
	key, keyEnd, val []byte
	end              bool
	verdict          string
}

// nftElement is one set or map element: key components, and for maps the data
// (components, or a verdict).
type nftElement struct {
	key     []string
	data    []string
	verdict string // "goto X", "jump X", "drop", "accept" in verdict maps
}

var priorityNames = map[string]int{"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0,
	"security": 50, "srcnat": 100}

// parseNftRuleset reads the text nft prints; rules keep their line numbers and
// handles (nft -a).
func parseNftRuleset(text string) (*nftRuleset, []string, error) {
	rs := &nftRuleset{}
	var warn []string
	lines := strings.Split(text, "\n")
	var tbl *nftTable
	var ch *nftChain
	var set *nftSet
	skipDepth := 0
	for i := 0; i < len(lines); i++ {
		n := i + 1
		line, handle := stripNftComment(lines[i])
		if line == "" {
			continue
		}
		if skipDepth > 0 {
			skipDepth += strings.Count(line, "{") - strings.Count(line, "}")
			continue
		}
		f := strings.Fields(line)
		switch {
		case tbl == nil && f[0] == "table" && len(f) >= 3:
			fam, name := "ip", f[1]
			if len(f) >= 4 {
				fam, name = f[1], f[2]
			}
			tbl = &nftTable{family: fam, name: unquote(name), chains: map[string]*nftChain{}, sets: map[string]*nftSet{}}
			rs.tables = append(rs.tables, tbl)
		case tbl == nil:
			warn = append(warn, fmt.Sprintf("line %d: outside any table, ignored: %s", n, clip(line)))
		case ch != nil:
			if line == "}" {
				ch = nil
				continue
			}
			if err := ch.addLine(line, n, handle); err != nil {
				return nil, warn, fmt.Errorf("line %d: %v", n, err)
			}
		case set != nil:
			if line == "}" {
				set = nil
				continue
			}
			if strings.HasPrefix(line, "elements = {") {
				body, end := collectBraces(lines, i, strings.Index(lines[i], "{"))
				set.elements = parseElements(body)
				i = end
				continue
			}
			if len(f) >= 2 && f[0] == "timeout" {
				set.timeout = strings.TrimSuffix(f[1], ";")
			}
		case line == "}":
			tbl = nil
		case (f[0] == "chain" || f[0] == "set" || f[0] == "map") && len(f) >= 2:
			name := unquote(f[1])
			if f[0] == "chain" {
				ch = &nftChain{table: tbl, name: name}
				tbl.chains[name] = ch
			} else {
				set = &nftSet{name: name, isMap: f[0] == "map"}
				tbl.sets[name] = set
			}
			if strings.HasSuffix(line, "}") { // "chain x { }" on one line
				ch, set = nil, nil
			}
		default:
			// flowtables, counters, quotas, ct helpers, comments: not needed.
			if strings.HasSuffix(line, "{") {
				skipDepth = 1
			}
		}
	}
	if len(rs.tables) == 0 {
		return nil, warn, fmt.Errorf("no table found: not nft list ruleset output")
	}
	return rs, warn, nil
}

// stripNftComment removes a trailing "# handle N" (nft -a) or a comment line.
func stripNftComment(s string) (string, uint64) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "#") {
		return "", 0
	}
	var handle uint64
	if i := strings.LastIndex(s, "# handle "); i >= 0 && !strings.Contains(s[i:], "\"") {
		handle, _ = strconv.ParseUint(strings.TrimSpace(s[i+len("# handle "):]), 10, 64)
		s = strings.TrimSpace(s[:i])
	}
	return s, handle
}

func unquote(s string) string { return strings.Trim(s, "\"") }

func (c *nftChain) addLine(line string, n int, handle uint64) error {
	if strings.HasPrefix(line, "type ") && strings.Contains(line, " hook ") {
		return c.parseHeader(line)
	}
	if strings.HasPrefix(line, "comment ") || strings.HasPrefix(line, "policy ") {
		return nil
	}
	r := &nftRule{line: n, handle: handle, text: line}
	stmts, err := parseNftRule(line)
	if err != nil {
		r.problem = err.Error()
	}
	r.stmts = stmts
	c.rules = append(c.rules, r)
	return nil
}

// parseHeader reads "type nat hook prerouting priority dstnat; policy accept;".
func (c *nftChain) parseHeader(line string) error {
	for _, part := range strings.Split(line, ";") {
		f := strings.Fields(part)
		for i := 0; i+1 < len(f); i++ {
			switch f[i] {
			case "type":
				c.kind = f[i+1]
			case "hook":
				c.hook = f[i+1]
			case "policy":
				c.policy = f[i+1]
			case "priority":
				p, err := parsePriority(f[i+1:])
				if err != nil {
					return fmt.Errorf("chain %s: %v", c.name, err)
				}
				c.priority = p
			}
		}
	}
	return nil
}

func parsePriority(f []string) (int, error) {
	base, ok := priorityNames[f[0]]
	if !ok {
		n, err := strconv.Atoi(f[0])
		if err != nil {
			return 0, fmt.Errorf("priority %q", f[0])
		}
		base = n
	}
	if len(f) >= 3 && (f[1] == "+" || f[1] == "-") {
		d, err := strconv.Atoi(f[2])
		if err != nil {
			return 0, fmt.Errorf("priority offset %q", f[2])
		}
		if f[1] == "-" {
			d = -d
		}
		base += d
	}
	return base, nil
}

// collectBraces returns the text between the "{" at lines[start][col] and its match,
// and the index of the line holding the match.
func collectBraces(lines []string, start, col int) (string, int) {
	var b strings.Builder
	depth := 0
	for i := start; i < len(lines); i++ {
		s := lines[i]
		if i == start {
			s = s[col:]
		}
		for j := 0; j < len(s); j++ {
			switch s[j] {
			case '{':
				depth++
				if depth == 1 {
					continue
				}
			case '}':
				depth--
				if depth == 0 {
					return b.String(), i
				}
			}
			b.WriteByte(s[j])
		}
		b.WriteByte(' ')
	}
	return b.String(), len(lines) - 1
}

// parseElements splits "a . b : goto c, d . e : goto f" into elements.
func parseElements(body string) []nftElement {
	toks := nftTokens(body)
	var out []nftElement
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			out = append(out, elementOf(cur))
		}
		cur = nil
	}
	for _, t := range toks {
		if t == "," {
			flush()
			continue
		}
		cur = append(cur, t)
	}
	flush()
	return out
}

func elementOf(toks []string) nftElement {
	var e nftElement
	side := &e.key
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch t {
		case ".":
			continue
		case ":":
			side = &e.data
			continue
		case "timeout", "expires", "comment":
			i++ // attribute with one value
			continue
		case "counter":
			i += 4 // counter packets N bytes M
			continue
		case "goto", "jump":
			if side == &e.data && i+1 < len(toks) {
				e.verdict = t + " " + unquote(toks[i+1])
				i++
				continue
			}
		case "drop", "accept", "return", "continue":
			if side == &e.data {
				e.verdict = t
				continue
			}
		}
		*side = append(*side, t)
	}
	return e
}

// nftTokens splits nft text into words, keeping quoted strings whole and making
// "{", "}" and "," tokens of their own.
func nftTokens(s string) []string {
	var out []string
	var b strings.Builder
	inQuote := false
	flush := func() {
		if b.Len() > 0 {
			out = append(out, b.String())
			b.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			inQuote = !inQuote
			b.WriteByte(c)
		case inQuote:
			b.WriteByte(c)
		case c == ' ' || c == '\t' || c == '\n':
			flush()
		case c == '{' || c == '}' || c == ',':
			flush()
			out = append(out, string(c))
		default:
			b.WriteByte(c)
		}
	}
	flush()
	return out
}
