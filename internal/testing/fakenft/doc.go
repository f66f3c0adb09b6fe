// Package fakenft is a stateful, in-memory nf_tables for tests. A Kernel holds tables
// (chains with rules, sets and maps with elements); each Conn it hands out queues
// operations the way a google/nftables *nftables.Conn does and applies them on Flush
// as one transaction, all or nothing, refusing what the kernel refuses (a rule in a
// missing chain, a jump to a missing chain, deleting a chain that still has rules or
// is jumped to, deleting a missing element, a map element that clashes with an
// existing one). Dump prints a table in a stable text form, so a test can compare
// what a sequence of partial syncs left with what one full sync writes, and Batches
// records what each transaction sent.
//
// It is Linux-only, like google/nftables.
package fakenft
