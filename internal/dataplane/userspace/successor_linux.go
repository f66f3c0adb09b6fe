package userspace

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// listenerCounts counts, for each address in want, the TCP sockets listening on
// it in this network namespace (every process's), from /proc/net/tcp and tcp6.
// A count above 1 on an address kproxy listens on is another process's
// SO_REUSEPORT listener: a successor.
func listenerCounts(want []netip.AddrPort) (map[netip.AddrPort]int, error) {
	keys := make(map[string]netip.AddrPort, len(want))
	for _, a := range want {
		keys[procNetAddr(a)] = a
	}
	counts := make(map[netip.AddrPort]int, len(want))
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if err := countListeners(f, keys, counts); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	return counts, nil
}

func countListeners(path string, keys map[string]netip.AddrPort, counts map[netip.AddrPort]int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "  sl  local_address rem_address   st ..."; st 0A is LISTEN.
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != "0A" {
			continue
		}
		if a, ok := keys[fields[1]]; ok {
			counts[a]++
		}
	}
	return sc.Err()
}

// procNetAddr formats a as /proc/net/tcp{,6} shows it: the address as 32-bit
// words in the host's byte order, in hex, then the port.
func procNetAddr(a netip.AddrPort) string {
	b := a.Addr().Unmap().AsSlice()
	var sb strings.Builder
	for i := 0; i+4 <= len(b); i += 4 {
		fmt.Fprintf(&sb, "%08X", binary.NativeEndian.Uint32(b[i:i+4]))
	}
	fmt.Fprintf(&sb, ":%04X", a.Port())
	return sb.String()
}
