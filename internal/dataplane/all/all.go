// Package all links every proxy mode into the binary. Each mode registers itself
// with the dataplane registry from its init function: add one import line per mode.
package all

import (
	_ "kproxy.dev/kproxy/internal/dataplane"
	_ "kproxy.dev/kproxy/internal/dataplane/ebpf"
	_ "kproxy.dev/kproxy/internal/dataplane/iptables"
	_ "kproxy.dev/kproxy/internal/dataplane/ipvs"
	_ "kproxy.dev/kproxy/internal/dataplane/nftables"
	_ "kproxy.dev/kproxy/internal/dataplane/userspace"
)
