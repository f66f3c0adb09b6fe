// Package iptables is the "iptables" proxy mode: kube-proxy's rule layout
// (KUBE-SERVICES → KUBE-SVC-* → KUBE-SEP-* with -m statistic, the same chain names)
// written with iptables-restore, through either the nf_tables or the legacy
// backend. The one deliberate difference: above 1,000 endpoints a Service's
// endpoint choice goes through bucket chains of about sqrt(n) endpoints each
// (render_bucket.go), so that a one-endpoint change rewrites one bucket instead of
// the n-rule chain and a new connection walks O(sqrt n) rules. Partial syncs
// rewrite only the changed Services' chains; a periodic check diffs iptables-save
// against what was applied and repairs any damage. See README.md in this directory
// for the layout, with an example.
package iptables
