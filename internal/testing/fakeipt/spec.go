package fakeipt

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// tokenize splits a restore line into arguments, honouring double quotes and
// backslash escapes inside them as iptables-restore does.
func tokenize(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inQuote, started := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case inQuote && ch == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case ch == '"':
			inQuote, started = !inQuote, true
		case !inQuote && (ch == ' ' || ch == '\t'):
			if started {
				out = append(out, cur.String())
				cur.Reset()
				started = false
			}
		default:
			cur.WriteByte(ch)
			started = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote in %q", line)
	}
	if started {
		out = append(out, cur.String())
	}
	return out, nil
}

// canonical renders a rule's arguments as iptables-save prints them: a leading
// counter pair dropped, addresses of -s/-d with their prefix length, the statistic
// probability rounded to the kernel's 31-bit fraction and printed with eleven
// decimals, and comments (or arguments with blanks) quoted only when they hold more
// than [A-Za-z0-9_-] (xtables_save_string).
func canonical(args []string) (string, error) {
	if len(args) > 0 && strings.HasPrefix(args[0], "[") && strings.HasSuffix(args[0], "]") {
		args = args[1:]
	}
	if len(args) == 0 {
		return "", fmt.Errorf("empty rule")
	}
	out := make([]string, len(args))
	for i, a := range args {
		v := a
		if i > 0 {
			switch args[i-1] {
			case "-s", "-d", "--source", "--destination":
				v = withPrefix(a)
			case "--probability":
				p, err := strconv.ParseFloat(a, 64)
				if err != nil || p < 0 || p > 1 {
					return "", fmt.Errorf("bad probability %q", a)
				}
				v = strconv.FormatFloat(math.Round(p*0x80000000)/0x80000000, 'f', 11, 64)
			}
		}
		if i > 0 && args[i-1] == "--comment" || strings.ContainsAny(v, " \t\"\\") {
			v = quote(v)
		}
		out[i] = v
	}
	return strings.Join(out, " "), nil
}

func withPrefix(a string) string {
	if strings.Contains(a, "/") {
		return a
	}
	if ip, err := netip.ParseAddr(a); err == nil {
		return fmt.Sprintf("%s/%d", ip, ip.BitLen())
	}
	return a
}

func quote(v string) string {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
		}
	}
	if v == "" {
		return `""`
	}
	return v
}

// ruleTarget returns the chain or target a canonical rule jumps or goes to, "" if
// it has none.
func ruleTarget(rule string) string {
	args, err := tokenize(rule)
	if err != nil {
		return ""
	}
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-j", "--jump", "-g", "--goto":
			return args[i+1]
		}
	}
	return ""
}
