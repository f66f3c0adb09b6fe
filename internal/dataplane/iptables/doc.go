// Package iptables is the "iptables" proxy mode: kube-proxy's rule layout
// (KUBE-SERVICES → KUBE-SVC-* → KUBE-SEP-* with -m statistic, the same chain names)
// written with iptables-restore, through either the nf_tables or the legacy
// backend. Partial syncs rewrite only the changed Services' chains; a periodic
// check diffs iptables-save against what was applied and repairs any damage. See
// README.md in this directory for the layout, with an example.
package iptables
