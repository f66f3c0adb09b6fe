package lb

// wlc is weighted least connection (ip_vs_wlc): the lowest overhead/weight wins.
func init() {
	Register("wlc", func(Options) (Scheduler, error) { return newLeast("wlc", wlcKey), nil })
}

func wlcKey(d *dest) (ratio, bool) {
	return ratio{d.overhead(), int64(d.Weight)}, d.available()
}
