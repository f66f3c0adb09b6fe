package bench

// Result is one mode measured at one size. The JSON field names are an interface
// (issues #4-#7 name them): scripts and docs read them, so keep them. Pointers are
// null when the mode cannot measure that figure (for example render and baseline
// of a mode that does not implement dataplane.Bencher).
type Result struct {
	Mode      string `json:"mode"`
	Services  int    `json:"services"`
	Endpoints int    `json:"endpoints"`
	// Rules is SyncStats.TotalRules after the cold full sync.
	Rules                int      `json:"rules"`
	RenderSeconds        *float64 `json:"render_seconds"`
	FullSyncSeconds      float64  `json:"full_sync_seconds"`
	PartialSyncSeconds   float64  `json:"partial_sync_seconds"`
	BaselineApplySeconds *float64 `json:"baseline_apply_seconds"`
	// PartialSyncRuns lists every one-Service change measured; PartialSyncSeconds
	// is their median.
	PartialSyncRuns []float64 `json:"partial_sync_runs_seconds,omitempty"`
	// EndpointChangeSeconds is the median of one-endpoint changes (one endpoint
	// of one existing Service moved, nothing else), null when not measured.
	EndpointChangeSeconds *float64  `json:"endpoint_change_seconds,omitempty"`
	EndpointChangeRuns    []float64 `json:"endpoint_change_runs_seconds,omitempty"`
	// CPU seconds (user+system) during the full and partial syncs: of the kproxy
	// process itself, and of the tools it ran (iptables-restore, nft, ipset).
	CPUKproxySeconds float64 `json:"cpu_kproxy_seconds"`
	CPUToolsSeconds  float64 `json:"cpu_tools_seconds"`
	// PeakRSSBytes is the measuring process's peak resident set (VmHWM) right after
	// the cold full sync and the one-Service changes: kproxy's Tracker holding the
	// workload, the dataplane's model, the syncs; not the bench's own render and
	// baseline, which come after.
	// It is null where it was not read (results from before it existed).
	PeakRSSBytes *int64 `json:"peak_rss_bytes"`
	// Tools maps each program the mode runs during its syncs to the path it
	// resolved to in PATH (iptables-nft-restore: which build was measured).
	Tools map[string]string `json:"tools,omitempty"`

	// Connect latency, filled by `bench compare` only.
	ConnectCount    int      `json:"connect_count,omitempty"`
	ConnectFirstP50 *float64 `json:"connect_first_p50_seconds,omitempty"`
	ConnectFirstP99 *float64 `json:"connect_first_p99_seconds,omitempty"`
	ConnectLastP50  *float64 `json:"connect_last_p50_seconds,omitempty"`
	ConnectLastP99  *float64 `json:"connect_last_p99_seconds,omitempty"`
	// RoundTrip is connect until the backend's first byte arrives: in userspace
	// mode connect() completes at the local relay, so only this reaches the backend.
	RoundTripFirstP50 *float64 `json:"roundtrip_first_p50_seconds,omitempty"`
	RoundTripLastP50  *float64 `json:"roundtrip_last_p50_seconds,omitempty"`
	RoundTripLastP99  *float64 `json:"roundtrip_last_p99_seconds,omitempty"`
	ConnectError      string   `json:"connect_error,omitempty"`
	// Where says where the numbers were measured when not on this host ("vm").
	Where string `json:"where,omitempty"`
}

// Skipped is a mode `bench compare` did not measure, and why.
type Skipped struct {
	Mode   string `json:"mode"`
	Reason string `json:"reason"`
}

func ptr(v float64) *float64 { return &v }
