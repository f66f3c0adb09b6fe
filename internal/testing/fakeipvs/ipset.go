package fakeipvs

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// ipset is one set: its type, family, create options and entries (in the form
// `ipset save` prints them).
type ipset struct {
	typ     string
	family  string
	options []string
	entries map[string]bool
	// maxElem bounds a hash set's entries (ipset's default 65,536 unless
	// created with maxelem), as the kernel does.
	maxElem int
}

// IPSet applies `ipset restore -exist` text line by line, as the tool does: a bad
// line stops the restore with an error naming it, and the lines before it stay
// applied. It checks entries against the set's type and family. The zero value has
// no sets. A hash set holds at most its maxelem entries; swap exchanges two sets
// of the same type and family.
type IPSet struct {
	mu       sync.Mutex
	sets     map[string]*ipset
	restores []string
	// InUse, when set, reports whether a kernel component (an iptables rule) uses a
	// set; Destroy refuses such a set, as the kernel does.
	InUse func(name string) bool
	// Fail, when set, is asked about each restore line (its fields) before it
	// is applied; an error fails the line, as a kernel refusal would.
	Fail func(fields []string) error
}

// Restore applies text as `ipset restore -exist` does.
func (s *IPSet) Restore(_ context.Context, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restores = append(s.restores, text)
	if s.sets == nil {
		s.sets = map[string]*ipset{}
	}
	for i, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if s.Fail != nil {
			if err := s.Fail(f); err != nil {
				return fmt.Errorf("ipset v7.17: Error in line %d: %s", i+1, err)
			}
		}
		if err := s.apply(f); err != nil {
			return fmt.Errorf("ipset v7.17: Error in line %d: %s", i+1, err)
		}
	}
	return nil
}

func (s *IPSet) apply(f []string) error {
	cmd, name := f[0], ""
	if len(f) > 1 {
		name = f[1]
	}
	switch cmd {
	case "create", "-N":
		return s.create(name, f[2:])
	case "add", "-A", "del", "-D":
		set := s.sets[name]
		if set == nil {
			return fmt.Errorf("the set with the given name does not exist")
		}
		if len(f) < 3 {
			return fmt.Errorf("missing entry for %s", name)
		}
		e, err := set.normalize(f[2])
		if err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
		if cmd == "add" || cmd == "-A" {
			if !set.entries[e] && set.maxElem > 0 && len(set.entries) >= set.maxElem {
				//lint:ignore ST1005 the kernel's words, which callers match
				return fmt.Errorf("Hash is full, cannot add more elements")
			}
			set.entries[e] = true
		} else {
			delete(set.entries, e)
		}
		return nil
	case "flush", "-F":
		if set := s.sets[name]; set != nil {
			set.entries = map[string]bool{}
			return nil
		}
		return fmt.Errorf("the set with the given name does not exist")
	case "destroy", "-X":
		return s.destroy(name)
	case "swap", "-W":
		return s.swap(name, f[2:])
	}
	return fmt.Errorf("unknown command %s", cmd)
}

func (s *IPSet) create(name string, args []string) error {
	if len(name) > 31 {
		return fmt.Errorf("setname '%s' is longer than 31 characters", name)
	}
	if len(args) == 0 {
		return fmt.Errorf("missing set type for %s", name)
	}
	set := &ipset{typ: args[0], family: "inet", options: args[1:], entries: map[string]bool{}}
	if strings.HasPrefix(set.typ, "hash:") {
		set.maxElem = 65536
	}
	for i := 1; i+1 < len(args); i++ {
		switch args[i] {
		case "family":
			set.family = args[i+1]
		case "maxelem":
			n, err := strconv.Atoi(args[i+1])
			if err != nil || n <= 0 {
				return fmt.Errorf("bad maxelem %q", args[i+1])
			}
			set.maxElem = n
		}
	}
	if dims(set.typ) == nil {
		return fmt.Errorf("unknown set type %s", set.typ)
	}
	if old := s.sets[name]; old != nil {
		if old.typ != set.typ || old.family != set.family || old.maxElem != set.maxElem {
			return fmt.Errorf("set cannot be created: set with the same name already exists")
		}
		return nil // -exist
	}
	s.sets[name] = set
	return nil
}

func (s *IPSet) destroy(name string) error {
	if s.sets[name] == nil {
		return fmt.Errorf("the set with the given name does not exist")
	}
	if s.InUse != nil && s.InUse(name) {
		return fmt.Errorf("set cannot be destroyed: it is in use by a kernel component")
	}
	delete(s.sets, name)
	return nil
}

// swap exchanges the sets behind two names: a rule matching either name now
// matches the other set.
func (s *IPSet) swap(name string, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("missing second set name")
	}
	a, b := s.sets[name], s.sets[args[0]]
	if a == nil || b == nil {
		return fmt.Errorf("the set with the given name does not exist")
	}
	if a.typ != b.typ || a.family != b.family {
		return fmt.Errorf("the sets cannot be swapped: their type does not match")
	}
	s.sets[name], s.sets[args[0]] = b, a
	return nil
}

// MaxElem is the set's maxelem (0 for bitmap sets or an absent set).
func (s *IPSet) MaxElem(set string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sets[set] == nil {
		return 0
	}
	return s.sets[set].maxElem
}

// Entries counts the set's entries.
func (s *IPSet) Entries(set string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sets[set] == nil {
		return 0
	}
	return len(s.sets[set].entries)
}

// dims lists what each part of an entry of the type is.
func dims(typ string) []string {
	switch typ {
	case "hash:ip":
		return []string{"ip"}
	case "hash:ip,port":
		return []string{"ip", "port"}
	case "hash:ip,port,ip":
		return []string{"ip", "port", "ip"}
	case "hash:ip,port,net":
		return []string{"ip", "port", "net"}
	case "hash:net":
		return []string{"net"}
	case "bitmap:port":
		return []string{"bareport"}
	}
	return nil
}

// normalize checks an entry against the set and returns it as `ipset save` prints
// it: addresses canonical, ports with their protocol, host nets without /32.
func (set *ipset) normalize(entry string) (string, error) {
	d := dims(set.typ)
	parts := strings.Split(entry, ",")
	if len(parts) != len(d) {
		return "", fmt.Errorf("entry %q does not fit type %s", entry, set.typ)
	}
	for i, p := range parts {
		var err error
		switch d[i] {
		case "ip":
			parts[i], err = set.addr(p)
		case "net":
			parts[i], err = set.net(p)
		case "port":
			parts[i], err = protoPort(p)
		case "bareport":
			_, err = port(p)
		}
		if err != nil {
			return "", fmt.Errorf("entry %q: %w", entry, err)
		}
	}
	return strings.Join(parts, ","), nil
}

func (set *ipset) addr(p string) (string, error) {
	a, err := netip.ParseAddr(p)
	if err != nil {
		return "", err
	}
	if a.Is4() != (set.family == "inet") {
		return "", fmt.Errorf("address %s is not of family %s", a, set.family)
	}
	return a.String(), nil
}

func (set *ipset) net(p string) (string, error) {
	if !strings.Contains(p, "/") {
		return set.addr(p)
	}
	pf, err := netip.ParsePrefix(p)
	if err != nil {
		return "", err
	}
	if pf.Addr().Is4() != (set.family == "inet") {
		return "", fmt.Errorf("network %s is not of family %s", pf, set.family)
	}
	if pf.Bits() == pf.Addr().BitLen() {
		return pf.Addr().String(), nil
	}
	return pf.Masked().String(), nil
}

func protoPort(p string) (string, error) {
	proto, num, ok := strings.Cut(p, ":")
	if !ok {
		proto, num = "tcp", p
	}
	switch proto {
	case "tcp", "udp", "sctp":
	default:
		return "", fmt.Errorf("unknown protocol %q", proto)
	}
	n, err := port(num)
	return proto + ":" + strconv.Itoa(n), err
}

func port(p string) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("bad port %q", p)
	}
	return n, nil
}

// Save prints every set as `ipset save` does: a create line, then add lines.
func (s *IPSet) Save(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, name := range sortedSetNames(s.sets) {
		set := s.sets[name]
		b.WriteString(strings.Join(append([]string{"create", name, set.typ}, set.options...), " ") + "\n")
		entries := make([]string, 0, len(set.entries))
		for e := range set.entries {
			entries = append(entries, e)
		}
		sort.Strings(entries)
		for _, e := range entries {
			b.WriteString("add " + name + " " + e + "\n")
		}
	}
	return b.String(), nil
}

func sortedSetNames(m map[string]*ipset) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Destroy destroys the named sets, ignoring sets that do not exist.
func (s *IPSet) Destroy(_ context.Context, names []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		if s.sets[n] == nil {
			continue
		}
		if err := s.destroy(n); err != nil {
			return fmt.Errorf("ipset destroy %s: %w", n, err)
		}
	}
	return nil
}

// Has reports whether the set holds the entry (in the form ipset save prints).
func (s *IPSet) Has(set, entry string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sets[set] != nil && s.sets[set].entries[entry]
}

// Exists reports whether the set exists.
func (s *IPSet) Exists(set string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sets[set] != nil
}

// Len counts the sets.
func (s *IPSet) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sets)
}

// Restores returns the text of every Restore call, oldest first.
func (s *IPSet) Restores() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.restores...)
}

// ForgetRestores drops the recorded restore texts (long benchmarks).
func (s *IPSet) ForgetRestores() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restores = nil
}
