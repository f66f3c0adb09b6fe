// Package healthz serves kproxy's health endpoints with kube-proxy's semantics:
// the proxy is unhealthy when an update has been queued for longer than
// 2 x syncPeriod without a successful sync, and /healthz also reports 503 when the
// node is being deleted. It also builds the metrics server's handler.
package healthz

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Server.
type Options struct {
	// Timeout is how long a queued update may wait for a sync: 2 x syncPeriod.
	Timeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// HealthzTotal and LivezTotal, if set, count responses by code.
	HealthzTotal *prometheus.CounterVec
	LivezTotal   *prometheus.CounterVec
	// Families are the IP families the proxy serves ("IPv4", "IPv6"), each
	// reported in the body's per-family status; nil means IPv4.
	Families []string
}

// Server tracks proxy health. Its methods are safe for concurrent use.
type Server struct {
	o Options

	mu           sync.Mutex
	lastUpdated  time.Time
	oldestQueued time.Time // zero when no update waits
	nodeEligible bool
	source       *SourceStatus
}

// New returns a Server; a new proxy is healthy and its node eligible.
func New(o Options) *Server {
	if o.Now == nil {
		o.Now = time.Now
	}
	if len(o.Families) == 0 {
		o.Families = []string{"IPv4"}
	}
	return &Server{o: o, nodeEligible: true}
}

// QueuedUpdate records that a change waits for a sync. Only the oldest waiting
// change matters: later ones do not restart the clock.
func (s *Server) QueuedUpdate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.oldestQueued.IsZero() {
		s.oldestQueued = s.o.Now()
	}
}

// Updated records a successful sync: every change queued before it is applied.
func (s *Server) Updated() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastUpdated = s.o.Now()
	s.oldestQueued = time.Time{}
}

// SetNodeEligible says whether this node should receive load-balancer traffic
// (false while the Node is being deleted or drained by the cluster autoscaler).
func (s *Server) SetNodeEligible(ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodeEligible = ok
}

// Status is the JSON body of /healthz and /livez, in kube-proxy 1.37's layout:
// the overall lastUpdated, currentTime, nodeEligible (/healthz only) and healthy,
// and a per-family status once the proxy has synced. Source is kproxy's addition.
type Status struct {
	LastUpdated  time.Time                `json:"lastUpdated"`
	CurrentTime  time.Time                `json:"currentTime"`
	NodeEligible *bool                    `json:"nodeEligible,omitempty"`
	Healthy      bool                     `json:"healthy"`
	Status       map[string]ProxierHealth `json:"status,omitempty"`
	Source       *SourceStatus            `json:"source,omitempty"`
}

// ProxierHealth is one IP family's health, as kube-proxy reports each proxier's.
type ProxierHealth struct {
	LastUpdated time.Time `json:"lastUpdated"`
	Healthy     bool      `json:"healthy"`
}

// SourceStatus says whether the source of Services (the API server's watches)
// has delivered its initial state, and its last failure: a down API server shows
// here as well as in the log. It does not make the proxy unhealthy: the rules in
// place keep serving, as in kube-proxy.
type SourceStatus struct {
	Synced bool `json:"synced"`
	// Watching is false from a failed list or watch until it works again.
	Watching      bool       `json:"watching"`
	LastError     string     `json:"lastError,omitempty"`
	LastErrorTime *time.Time `json:"lastErrorTime,omitempty"`
}

// SourceSynced records that the source delivered its initial state.
func (s *Server) SourceSynced() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.source == nil {
		s.source = &SourceStatus{}
	}
	s.source.Synced, s.source.Watching = true, true
}

// SourceRestored records that the failed watches work again.
func (s *Server) SourceRestored() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.source != nil {
		s.source.Watching = true
	}
}

// SourceError records a failed list or watch.
func (s *Server) SourceError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.source == nil {
		s.source = &SourceStatus{}
	}
	now := s.o.Now()
	msg := err.Error()
	if len(msg) > 512 {
		msg = msg[:512] + "...(truncated)"
	}
	s.source.LastError, s.source.LastErrorTime, s.source.Watching = msg, &now, false
}

// Health reports the proxy's health now.
func (s *Server) Health() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Now()
	healthy := s.oldestQueued.IsZero() || now.Sub(s.oldestQueued) <= s.o.Timeout
	eligible := s.nodeEligible
	st := Status{LastUpdated: s.lastUpdated, CurrentTime: now, NodeEligible: &eligible, Healthy: healthy}
	if !s.lastUpdated.IsZero() {
		st.Status = map[string]ProxierHealth{}
		for _, f := range s.o.Families {
			st.Status[f] = ProxierHealth{LastUpdated: s.lastUpdated, Healthy: healthy}
		}
	}
	if s.source != nil {
		src := *s.source
		st.Source = &src
	}
	return st
}

// HealthzHandler serves /healthz: 200 when healthy and the node eligible, else 503.
func (s *Server) HealthzHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := s.Health()
		ok := st.Healthy && *st.NodeEligible
		writeStatus(w, st, ok, s.o.HealthzTotal)
	})
}

// LivezHandler serves /livez: like /healthz but the node's eligibility does not count.
func (s *Server) LivezHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := s.Health()
		st.NodeEligible = nil
		writeStatus(w, st, st.Healthy, s.o.LivezTotal)
	})
}

func writeStatus(w http.ResponseWriter, st Status, ok bool, counter *prometheus.CounterVec) {
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	} else {
		// As kube-proxy: a healthy answer's lastUpdated is now, the semantics
		// older releases had (the sync loop ran); the metrics give the real time.
		st.LastUpdated = st.CurrentTime
	}
	if counter != nil {
		counter.WithLabelValues(strconv.Itoa(code)).Inc()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(st)
}

// Handler is the healthz server's mux: /healthz and /livez.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/healthz", s.HealthzHandler())
	mux.Handle("/livez", s.LivezHandler())
	return mux
}
