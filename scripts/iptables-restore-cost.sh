#!/bin/bash
# What one statement of a one-endpoint change costs iptables-nft-restore
# --noflush against a nat table holding one Service of N endpoints (a KUBE-SVC
# chain of N statistic rules, N KUBE-SEP chains). Prints wall time and the CPU
# time (user + system, the kernel's work for the netlink calls included) of the
# iptables-nft-restore process, first with the Service's chains unreachable, then
# with a jump to them from OUTPUT. Root; runs in a private network namespace of its
# own, never in the host's.
#   sudo scripts/iptables-restore-cost.sh 100 10000
set -euo pipefail
NS=kproxy-ipt-cost-$$
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100 10000)
load=$(mktemp)
ip netns add "$NS"
trap 'ip netns del "$NS"; rm -f "$load"' EXIT
t() {
	local out
	out=$( { TIMEFORMAT='%3R %3U %3S'; time ip netns exec "$NS" iptables-nft-restore --noflush; } 2>&1 )
	awk -v t="$out" -v l="$1" -v n="$N" 'BEGIN{split(t, a, " "); printf "N=%s %-34s wall %4.0f ms  cpu %4.0f ms (sys %4.0f)\n", n, l, a[1]*1000, (a[2]+a[3])*1000, a[3]*1000}'
}
for N in "${sizes[@]}"; do
	awk -v N="$N" 'BEGIN{print "*nat"; print ":KUBE-SVC-BIG - [0:0]";
	  for(i=1;i<=N;i++) print ":KUBE-SEP-" i " - [0:0]";
	  for(i=1;i<=N;i++){ l=N-i+1;
	    if(l>1) printf "-A KUBE-SVC-BIG -m statistic --mode random --probability %.10f -j KUBE-SEP-%d\n", 1/l, i;
	    else print "-A KUBE-SVC-BIG -j KUBE-SEP-" i;
	    printf "-A KUBE-SEP-%d -p tcp -m tcp -j DNAT --to-destination 10.%d.%d.%d:8080\n", i, int(i/65536)+1, int(i/256)%256, i%256 }
	  print "COMMIT"}' >"$load"
	ip netns exec "$NS" iptables-nft-restore <"$load"
	for r in 1 2; do
		printf '*nat\nCOMMIT\n' | t "empty"
		printf '*nat\n:KUBE-DECL-%s - [0:0]\nCOMMIT\n' $r | t "declare one empty chain"
		printf '*nat\n:KUBE-SEP-A%s - [0:0]\n-A KUBE-SEP-A%s -p tcp -m tcp -j DNAT --to-destination 10.250.0.1:8080\nCOMMIT\n' $r $r | t "new chain + rule"
		awk -v r=$r 'BEGIN{print "*nat"; print ":KUBE-B-" r " - [0:0]"; for(i=1;i<=100;i++) printf "-A KUBE-B-%s -m statistic --mode random --probability 0.5 -j KUBE-SEP-A%s\n", r, r; print "COMMIT"}' | t "new chain + 100 rules"
		printf '*nat\n-R KUBE-SVC-BIG %s -m statistic --mode random --probability 0.5 -j KUBE-SEP-A%s\nCOMMIT\n' $((N / 2 + r)) $r | t "-R one rule of KUBE-SVC"
		printf '*nat\n-F KUBE-SEP-%s\n-X KUBE-SEP-%s\nCOMMIT\n' $((N / 2 + r)) $((N / 2 + r)) | t "-F/-X one KUBE-SEP"
	done
	# The same once the chains are reachable from a base chain, as kube-proxy's
	# are (PREROUTING/OUTPUT -> KUBE-SERVICES -> KUBE-SVC-...): on commit the
	# kernel then validates every rule reachable from the base chains.
	ip netns exec "$NS" iptables-nft -t nat -A OUTPUT -j KUBE-SVC-BIG
	for r in 3 4; do
		printf '*nat\nCOMMIT\n' | t "empty, reachable"
		printf '*nat\n:KUBE-DECL-%s - [0:0]\nCOMMIT\n' $r | t "declare one empty chain, reachable"
		printf '*nat\n:KUBE-SEP-A%s - [0:0]\n-A KUBE-SEP-A%s -p tcp -m tcp -j DNAT --to-destination 10.250.0.1:8080\nCOMMIT\n' $r $r | t "new chain + rule, reachable"
	done
	ip netns exec "$NS" iptables-nft -t nat -F
	ip netns exec "$NS" iptables-nft -t nat -X
done
