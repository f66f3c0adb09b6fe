// Package trace explains what the rules a node holds do with one packet: the path
// through iptables chains or nftables chains and maps (or the IPVS and userspace
// tables), the rule or element matched at each step, the candidate endpoints with
// each one's probability or share, session affinity, masquerading and the verdict.
//
// It is pure: every mode is evaluated from text (iptables-save, nft list ruleset,
// ipvsadm -Ln) or from a list of virtual services, so the same code explains a dump
// pasted from a ticket and the rules read from the running kernel. Reading the kernel
// is the caller's job (internal/cli/trace.go).
//
// The evaluation forks wherever the rules choose at random (iptables -m statistic,
// nftables numgen) or by hash (jhash): every branch is followed to its end and keeps
// its own probability, so chained probabilities come out as the product
// P(i) = p_i * prod_{j<i}(1-p_j) without special cases.
package trace
