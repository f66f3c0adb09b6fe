//go:build linux

package ipvs

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

func TestSizeForLeavesRoomToDoubleAndMatchesKubeProxyWhenSmall(t *testing.T) {
	for _, c := range []struct {
		n                 int
		maxElem, hashSize int
	}{
		{0, 65536, 1024},
		{1, 65536, 1024},
		{4096, 65536, 1024},
		{20000, 65536, 8192},
		{32768, 65536, 8192},
		{32769, 131072, 16384},
		{65536, 131072, 16384},
		{70000, 262144, 32768},
		{100000, 262144, 32768},
		{500000, 1048576, 131072},
	} {
		if got := sizeFor(c.n); got != (setSize{c.maxElem, c.hashSize}) {
			t.Errorf("sizeFor(%d) = %+v, want maxelem %d hashsize %d", c.n, got, c.maxElem, c.hashSize)
		}
	}
}

func TestRenderCreateSizesHashSetsOnly(t *testing.T) {
	small := renderCreate(false, kubeProxySize)
	for _, want := range []string{
		"create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536 comment\n",
		"create KUBE-LOOP-BACK hash:ip,port,ip family inet hashsize 1024 maxelem 65536 comment\n",
		"create KUBE-NODE-PORT-TCP bitmap:port range 0-65535 comment\n",
	} {
		if !strings.Contains(small, want) {
			t.Errorf("renderCreate lacks %q:\n%s", want, small)
		}
	}
	big := renderCreate(true, func(name string) setSize {
		if name == "KUBE6-IPVS-IPS" {
			return sizeFor(100000)
		}
		return sizeFor(0)
	})
	if !strings.Contains(big, "create KUBE6-IPVS-IPS hash:ip family inet6 hashsize 32768 maxelem 262144 comment\n") ||
		!strings.Contains(big, "create KUBE6-CLUSTER-IP hash:ip,port family inet6 hashsize 1024 maxelem 65536 comment\n") {
		t.Errorf("renderCreate with sizes:\n%s", big)
	}
}

func TestParseMaxElemsReadsOurHashSets(t *testing.T) {
	saved := "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 8192 maxelem 131072 comment bucketsize 12 initval 0x1665977e\n" +
		"add KUBE-CLUSTER-IP 10.96.0.1,tcp:80\n" +
		"create KUBE6-IPVS-IPS hash:ip family inet6 hashsize 1024 comment\n" +
		"create KUBE-NODE-PORT-TCP bitmap:port range 0-65535 comment\n" +
		"create OTHER hash:ip family inet hashsize 1024 maxelem 7\n"
	got := parseMaxElems(saved)
	if len(got) != 2 || got["KUBE-CLUSTER-IP"] != 131072 || got["KUBE6-IPVS-IPS"] != 65536 {
		t.Errorf("parseMaxElems = %v, want KUBE-CLUSTER-IP 131072 and KUBE6-IPVS-IPS 65536 (the default)", got)
	}
	if !hasSet(saved, "OTHER") || !hasSet(saved, "KUBE-CLUSTER-IP") || hasSet(saved, "KUBE-CLUSTER") {
		t.Error("hasSet")
	}
}

// A set the diff fills past its maxelem is replaced where its additions would go
// by a temporary set holding every entry (old and new), swapped in and
// destroyed; KUBE-IPVS-IPS still comes last.
func TestRenderGrowsASetInPlaceOfItsAdditions(t *testing.T) {
	d := setDiff{
		Del: []setEntry{{"KUBE-CLUSTER-IP", "10.96.0.9,tcp:80"}},
		Add: []setEntry{
			{"KUBE-IPVS-IPS", "10.96.0.2"},
			{"KUBE-CLUSTER-IP", "10.96.0.2,tcp:80"},
			{"KUBE-EXTERNAL-IP", "1.2.3.4,tcp:80"},
		},
	}
	counts := map[string]int{"KUBE-CLUSTER-IP": 3, "KUBE-IPVS-IPS": 2, "KUBE-EXTERNAL-IP": 1}
	plan := grow(d, counts, map[string]int{"KUBE-CLUSTER-IP": 2, "KUBE-IPVS-IPS": 2, "KUBE-EXTERNAL-IP": 65536})
	if len(plan) != 1 || plan["KUBE-CLUSTER-IP"] != sizeFor(3) {
		t.Fatalf("grow = %v, want only KUBE-CLUSTER-IP, sized for 3", plan)
	}
	all := []string{"10.96.0.2,tcp:80", "10.96.0.1,tcp:80", "10.96.0.3,tcp:80"}
	got := d.render(map[string]string{"KUBE-CLUSTER-IP": renderGrow("KUBE-CLUSTER-IP", setSize{131072, 16384}, all)})
	want := "del KUBE-CLUSTER-IP 10.96.0.9,tcp:80\n" +
		"create KPROXY-GROW-TMP hash:ip,port family inet hashsize 16384 maxelem 131072 comment\n" +
		"flush KPROXY-GROW-TMP\n" +
		"add KPROXY-GROW-TMP 10.96.0.1,tcp:80\n" +
		"add KPROXY-GROW-TMP 10.96.0.2,tcp:80\n" +
		"add KPROXY-GROW-TMP 10.96.0.3,tcp:80\n" +
		"swap KPROXY-GROW-TMP KUBE-CLUSTER-IP\n" +
		"destroy KPROXY-GROW-TMP\n" +
		"add KUBE-EXTERNAL-IP 1.2.3.4,tcp:80\n" +
		"add KUBE-IPVS-IPS 10.96.0.2\n"
	if got != want {
		t.Errorf("render:\n%s\nwant:\n%s", got, want)
	}
	if v6 := renderGrow("KUBE6-LOOP-BACK", sizeFor(0), nil); !strings.HasPrefix(v6, "create KPROXY-GROW-TMP hash:ip,port,ip family inet6 hashsize 1024 maxelem 65536 comment\n") {
		t.Errorf("IPv6 grow:\n%s", v6)
	}
}

// clusterIPs adds ClusterIP Services to the fixture's snapshot (withClusterIPs)
// and returns the change.
func (f *fixture) clusterIPs(from, to int) state.ChangeSet {
	f.gen++
	var cs state.ChangeSet
	f.snap, cs = withClusterIPs(f.snap, f.gen, from, to)
	return cs
}

// withClusterIPs is snap plus the ClusterIP Services s<i>, 10.<96+i/62500>.
// <i/250%250>.<1+i%250>:80 for i in [from, to) (no endpoints), and the change.
func withClusterIPs(snap *state.Snapshot, gen uint64, from, to int) (*state.Snapshot, state.ChangeSet) {
	cs := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{}}
	next := &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{}, EndpointMap: map[state.ServicePortName][]state.Endpoint{}, Node: snap.Node, Generation: gen}
	for k, v := range snap.ServiceMap {
		next.ServiceMap[k] = v
		next.EndpointMap[k] = snap.EndpointMap[k]
	}
	for i := from; i < to; i++ {
		sp := clusterIP(fmt.Sprintf("s%d", i), fmt.Sprintf("10.%d.%d.%d", 96+i/62500, i/250%250, 1+i%250), 80, v1.ProtocolTCP)
		next.ServiceMap[sp.Name] = sp
		cs.Ports[sp.Name] = struct{}{}
	}
	return next, cs
}

// A set an older proxy created smaller than its entries need (here maxelem 4)
// is grown by the full sync through a swap: every entry lands, the rules still
// match it, and no temporary set is left.
func TestFullSyncGrowsASetTooSmallForItsEntries(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	if err := f.ipset.Restore(context.Background(), "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 4 comment\n"); err != nil {
		t.Fatal(err)
	}
	f.sync(f.clusterIPs(0, 6))
	if m, n := f.ipset.MaxElem("KUBE-CLUSTER-IP"), f.ipset.Entries("KUBE-CLUSTER-IP"); m != 65536 || n != 6 {
		t.Fatalf("KUBE-CLUSTER-IP: maxelem %d, %d entries; want 65536 and 6", m, n)
	}
	if f.ipset.Exists(growTempSet) || !f.ipt.UsesSet("KUBE-CLUSTER-IP") || f.ipset.Entries("KUBE-IPVS-IPS") != 6 {
		t.Fatalf("after the grow:\n%s", f.node.Dump())
	}
	last := f.ipset.Restores()[len(f.ipset.Restores())-1]
	if !strings.Contains(last, "swap KPROXY-GROW-TMP KUBE-CLUSTER-IP\n") || strings.Contains(last, "swap KPROXY-GROW-TMP KUBE-IPVS-IPS") {
		t.Errorf("only KUBE-CLUSTER-IP is grown:\n%s", last)
	}
	// A restart (a new proxier's full sync) keeps the grown set as it is.
	f.p.needFull = true
	f.sync(state.ChangeSet{})
	if f.ipset.MaxElem("KUBE-CLUSTER-IP") != 65536 || f.ipset.Entries("KUBE-CLUSTER-IP") != 6 {
		t.Fatalf("second full sync: maxelem %d", f.ipset.MaxElem("KUBE-CLUSTER-IP"))
	}
}

// An incremental sync that fills a set past its maxelem grows it in the same
// `ipset restore`, and stays incremental.
func TestIncrementalSyncGrowsASet(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	if err := f.ipset.Restore(context.Background(), "create KUBE-IPVS-IPS hash:ip family inet hashsize 1024 maxelem 4 comment\n"); err != nil {
		t.Fatal(err)
	}
	f.sync(f.clusterIPs(0, 4))
	if f.ipset.MaxElem("KUBE-IPVS-IPS") != 4 {
		t.Fatalf("4 entries fit: maxelem %d, want the 4 it had", f.ipset.MaxElem("KUBE-IPVS-IPS"))
	}
	st, err := f.core.Sync(context.Background(), f.snap, f.clusterIPs(4, 9))
	if err != nil || st.Full {
		t.Fatalf("sync: %v (full %v), want an incremental sync", err, st.Full)
	}
	if m, n := f.ipset.MaxElem("KUBE-IPVS-IPS"), f.ipset.Entries("KUBE-IPVS-IPS"); m != 65536 || n != 9 || f.ipset.Entries("KUBE-CLUSTER-IP") != 9 {
		t.Fatalf("KUBE-IPVS-IPS: maxelem %d, %d entries:\n%s", m, n, f.node.Dump())
	}
	last := f.ipset.Restores()[len(f.ipset.Restores())-1]
	if i, j := strings.Index(last, "add KUBE-CLUSTER-IP "), strings.Index(last, "swap KPROXY-GROW-TMP KUBE-IPVS-IPS"); i < 0 || j < i {
		t.Errorf("KUBE-IPVS-IPS must be swapped in after the other sets' additions:\n%s", last)
	}
}

// A set that cannot grow fails the sync with an error naming it, is logged once
// at the default level however often the sync is retried, and grows once the
// kernel lets it.
func TestASetThatCannotGrowIsLoggedOnceAndRetried(t *testing.T) {
	var logs bytes.Buffer
	f := newFixture(t, proxierOptions{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := f.ipset.Restore(context.Background(), "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 4 comment\n"); err != nil {
		t.Fatal(err)
	}
	f.ipset.Fail = func(fields []string) error {
		if fields[0] == "create" && fields[1] == growTempSet {
			return fmt.Errorf("Kernel error received: Cannot allocate memory")
		}
		return nil
	}
	cs := f.clusterIPs(0, 6)
	for range 3 {
		_, err := f.core.Sync(context.Background(), f.snap, cs)
		if err == nil || !strings.Contains(err.Error(), "growing KUBE-CLUSTER-IP") || !strings.Contains(err.Error(), "Cannot allocate memory") {
			t.Fatalf("sync: %v, want the grow of KUBE-CLUSTER-IP to fail", err)
		}
	}
	if n := strings.Count(logs.String(), "cannot grow ipset"); n != 1 || !strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("logged %d times, want once at ERROR:\n%s", n, logs.String())
	}
	if f.ipset.MaxElem("KUBE-CLUSTER-IP") != 4 {
		t.Fatal("the set must be left as it was")
	}
	f.ipset.Fail = nil
	if _, err := f.core.Sync(context.Background(), f.snap, state.ChangeSet{}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if f.ipset.MaxElem("KUBE-CLUSTER-IP") != 65536 || f.ipset.Entries("KUBE-CLUSTER-IP") != 6 || f.ipset.Exists(growTempSet) {
		t.Fatalf("after the retry:\n%s", f.node.Dump())
	}
	if !strings.Contains(logs.String(), "grew ipset") {
		t.Errorf("the grow is logged:\n%s", logs.String())
	}
}

// A temporary set an interrupted grow left behind (here of another size, which
// a grow's create -exist would refuse) is destroyed by the next full sync, and
// by the cleanup.
func TestLeftoverTemporarySetIsDestroyed(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	leftover := "create " + growTempSet + " hash:ip,port family inet hashsize 1024 maxelem 8 comment\nadd " + growTempSet + " 10.96.0.1,tcp:80\n"
	if err := f.ipset.Restore(context.Background(), leftover); err != nil {
		t.Fatal(err)
	}
	f.sync(f.clusterIPs(0, 2))
	if f.ipset.Exists(growTempSet) {
		t.Fatal("the full sync must destroy the leftover temporary set")
	}
	if err := f.ipset.Restore(context.Background(), leftover); err != nil {
		t.Fatal(err)
	}
	if err := f.p.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := f.ipset.Len(); n != 0 {
		t.Fatalf("%d sets left after the cleanup:\n%s", n, f.node.Dump())
	}
}
