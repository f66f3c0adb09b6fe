package lb

// sed is shortest expected delay (ip_vs_sed): the lowest (active+1)/weight wins, the
// delay a new connection would see if served in turn. Inactive connections do not
// count.
func init() {
	Register("sed", func(Options) (Scheduler, error) { return newLeast("sed", sedKey), nil })
}

func sedKey(d *dest) (ratio, bool) {
	return ratio{d.active + 1, int64(d.Weight)}, d.available()
}
