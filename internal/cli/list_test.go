package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/testing/golden"
)

// sampleList is deliberately out of order: formatList must sort like ipvsadm.
func sampleList() []dataplane.VirtualService {
	return []dataplane.VirtualService{
		{
			Service: "default/web:http", Protocol: "UDP", Address: "10.96.0.10:53", Scheduler: "rr",
			PersistentSeconds: 10800,
			RealServers: []dataplane.RealServer{
				{Address: "10.244.2.8:53", Forward: "Masq", Weight: 1, InActConn: 12},
			},
		},
		{
			Service: "default/web:http", Protocol: "TCP", Address: "10.96.0.10:80", Scheduler: "mh",
			Flags: []string{"mh-fallback", "mh-port"},
			Stats: &dataplane.Stats{Conns: 1234, InPkts: 150_000_000, OutPkts: 2_000_000_000, InBytes: 5_000_000_000_000, OutBytes: 7e14,
				CPS: 12.4, InPPS: 1000.5, OutPPS: 999, InBPS: 123456789, OutBPS: 0},
			RealServers: []dataplane.RealServer{
				{Address: "10.244.2.8:8080", Forward: "Masq", Weight: 1, ActiveConn: 3,
					Stats: &dataplane.Stats{Conns: 34, InPkts: 340, OutPkts: 300, InBytes: 34000, OutBytes: 900000, CPS: 1, InPPS: 2, OutPPS: 3, InBPS: 4, OutBPS: 5}},
				{Address: "10.244.1.5:8080", Forward: "Masq", Weight: 3, ActiveConn: 12, InActConn: 1},
			},
		},
		{
			Protocol: "TCP", Address: "[fd00::10]:443", Scheduler: "wrr",
			RealServers: []dataplane.RealServer{{Address: "[fd00:244::5]:8443", Forward: "Masq", Weight: 0}},
		},
		{Protocol: "TCP", Address: "10.96.0.1:443", Scheduler: "rr", RealServers: []dataplane.RealServer{}},
	}
}

func TestFormatListGolden(t *testing.T) {
	for _, tc := range []struct {
		file string
		f    listFormat
	}{
		{"list_plain.golden", listFormat{}},
		{"list_stats.golden", listFormat{Stats: true}},
		{"list_rate.golden", listFormat{Rate: true}},
	} {
		tc.f.Title = "IP Virtual Server (test)"
		var buf bytes.Buffer
		if err := formatList(&buf, sampleList(), tc.f); err != nil {
			t.Fatal(err)
		}
		golden.Check(t, tc.file, buf.Bytes())
	}
}

// The plain layout must line up exactly like ipvsadm's printf formats.
func TestFormatListIpvsadmColumns(t *testing.T) {
	var buf bytes.Buffer
	vs := []dataplane.VirtualService{{Protocol: "TCP", Address: "10.96.0.10:80", Scheduler: "rr",
		RealServers: []dataplane.RealServer{{Address: "10.244.1.5:8080", Forward: "Masq", Weight: 1, ActiveConn: 3}}}}
	if err := formatList(&buf, vs, listFormat{Title: "T"}); err != nil {
		t.Fatal(err)
	}
	want := "T\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  10.96.0.10:80 rr\n" +
		"  -> 10.244.1.5:8080              Masq    1      3          0         \n"
	if buf.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", buf.String(), want)
	}
}

func daemon(t *testing.T, status int, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/list" || r.Method != http.MethodGet {
			http.Error(w, "wrong request "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func runListCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"list"}, args...))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestListFromDaemon(t *testing.T) {
	body, _ := json.Marshal(sampleList())
	addr := daemon(t, http.StatusOK, string(body))

	out, err := runListCmd(t, "--admin-address", addr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "TCP  10.96.0.10:80 mh (mh-fallback,mh-port)\n") ||
		!strings.Contains(out, "  -> 10.244.1.5:8080              Masq    3      12         1         \n") {
		t.Fatalf("plain output lacks the service or real server:\n%s", out)
	}

	out, err = runListCmd(t, "--admin-address", addr, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got []dataplane.VirtualService
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json output is not []VirtualService: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(got, sampleList()) {
		t.Fatalf("--json round trip changed the data:\n%+v", got)
	}

	out, err = runListCmd(t, "--admin-address", addr, "--stats")
	if err != nil || !strings.Contains(out, "Conns   InPkts  OutPkts  InBytes OutBytes") {
		t.Fatalf("--stats: %v\n%s", err, out)
	}
	if _, err := runListCmd(t, "--admin-address", addr, "--stats", "--rate"); err == nil {
		t.Fatal("--stats with --rate accepted")
	}
}

func TestListDaemonErrors(t *testing.T) {
	addr := daemon(t, http.StatusServiceUnavailable, "mode iptables cannot list\n")
	if _, err := runListCmd(t, "--admin-address", addr); err == nil || !strings.Contains(err.Error(), "mode iptables cannot list") {
		t.Fatalf("error status: err = %v, want the daemon's message", err)
	}
	addr = daemon(t, http.StatusOK, "{not json")
	if _, err := runListCmd(t, "--admin-address", addr); err == nil || !strings.Contains(err.Error(), "not a list of virtual services") {
		t.Fatalf("bad body: err = %v", err)
	}
	// A port nothing listens on: the error says what to do.
	gone := httptest.NewServer(http.NotFoundHandler())
	srvAddr := strings.TrimPrefix(gone.URL, "http://")
	gone.Close()
	if _, err := runListCmd(t, "--admin-address", srvAddr); err == nil || !strings.Contains(err.Error(), "cannot reach the kproxy daemon") {
		t.Fatalf("no daemon: err = %v", err)
	}
}

func TestListKernel(t *testing.T) {
	if _, ok := dataplane.KernelLister("lbtest"); ok {
		t.Fatal("test mode already registered")
	}
	if _, err := runListCmd(t, "--kernel", "--mode", "lbtest"); err == nil || !strings.Contains(err.Error(), "not available") {
		t.Fatalf("no kernel lister: err = %v, want not available", err)
	}
	dataplane.RegisterKernelLister("lbtest", func(context.Context) ([]dataplane.VirtualService, error) {
		return sampleList()[:1], nil
	})
	out, err := runListCmd(t, "--kernel", "--mode", "lbtest")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "UDP  10.96.0.10:53 rr persistent 10800\n") {
		t.Fatalf("kernel listing:\n%s", out)
	}
}
