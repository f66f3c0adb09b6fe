package lb

// nq is never queue (ip_vs_nq): an idle backend (no active connection) is taken at
// once; when none is idle it behaves like sed.
func init() {
	Register("nq", func(Options) (Scheduler, error) { return newLeast("nq", nqKey), nil })
}

func nqKey(d *dest) (ratio, bool) {
	if d.active == 0 {
		// Below every sed value (those are >= 1/weight > 0): idle backends come first.
		return ratio{0, 1}, d.available()
	}
	return sedKey(d)
}
