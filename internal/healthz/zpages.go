package healthz

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"time"
)

// ConfigzGroup is the key kube-proxy's /configz puts its configuration under.
const ConfigzGroup = "kubeproxy.config.k8s.io"

const zpagesWarning = "Warning: This endpoint is not meant to be machine parseable, has no formatting compatibility " +
	"guarantees and is for debugging purposes only."

func configzHandler(cfg any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := json.Marshal(map[string]any{ConfigzGroup: cfg})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(b)
	})
}

func textHeader(w http.ResponseWriter, title string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	fmt.Fprintf(w, "\n%s\n%s\n\n", title, zpagesWarning)
}

// flagzHandler serves /flagz: the component's flags, one name=value a line,
// sorted, as the component-base zpage's text form.
func flagzHandler(flags func() map[string]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := flags()
		names := make([]string, 0, len(m))
		for n := range m {
			names = append(names, n)
		}
		sort.Strings(names)
		textHeader(w, "kproxy flags")
		for _, n := range names {
			fmt.Fprintf(w, "%s=%s\n", n, m[n])
		}
	})
}

// StatuszInfo is what /statusz reports besides the uptime.
type StatuszInfo struct {
	Started time.Time
	// Version is kproxy's binary version.
	Version string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// statuszHandler serves /statusz in the zpage's text form: start time, uptime,
// Go and binary versions, and the paths this server serves.
func statuszHandler(info StatuszInfo, paths []string) http.Handler {
	if info.Now == nil {
		info.Now = time.Now
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := info.Now().Sub(info.Started).Truncate(time.Second)
		textHeader(w, "kproxy statusz")
		fmt.Fprintf(w, "Started: %s\n", info.Started.UTC().Format(time.UnixDate))
		fmt.Fprintf(w, "Up: %d hr %02d min %02d sec\n", int(up.Hours()), int(up.Minutes())%60, int(up.Seconds())%60)
		fmt.Fprintf(w, "Go version: %s\n", runtime.Version())
		fmt.Fprintf(w, "Binary version: %s\n", info.Version)
		fmt.Fprintf(w, "Paths: %s\n", strings.Join(paths, " "))
	})
}
