//go:build linux

package nftables

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kproxy --cleanup removes kube-proxy's nftables tables in both families (as
// kube-proxy's own cleanup does) and leaves every other table alone.
func TestCleanupRemovesKubeProxyTables(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t, "kpcleanup")
	rules := `table ip kube-proxy {
	chain services { type nat hook prerouting priority dstnat; policy accept; }
}
table ip6 kube-proxy {
	chain services { type nat hook prerouting priority dstnat; policy accept; }
}
table ip other-firewall {
	chain input { type filter hook input priority filter; policy accept; }
}
`
	f := filepath.Join(t.TempDir(), "rules.nft")
	if err := os.WriteFile(f, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	ns.exec(t, "nft", "-f", f)

	for i := 0; i < 2; i++ { // the second run finds nothing to do and must succeed
		if err := deleteTables(ns.fd); err != nil {
			t.Fatalf("run %d: deleteTables: %v", i, err)
		}
		if err := deleteForeignTables(ns.fd, kubeProxyTable); err != nil {
			t.Fatalf("run %d: deleteForeignTables: %v", i, err)
		}
		out := ns.exec(t, "nft", "list", "tables")
		if strings.Contains(out, "kube-proxy") || strings.Contains(out, "kproxy") {
			t.Fatalf("run %d: tables left:\n%s", i, out)
		}
		if !strings.Contains(out, "table ip other-firewall") {
			t.Fatalf("run %d: cleanup removed another program's table:\n%s", i, out)
		}
	}
}
