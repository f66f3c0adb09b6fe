package lb

// lc is least connection (ip_vs_lc): the backend with the lowest overhead
// (active*256 + inactive) wins; weights only matter as 0 = no new connections.
func init() {
	Register("lc", func(Options) (Scheduler, error) { return newLeast("lc", lcKey), nil })
}

func lcKey(d *dest) (ratio, bool) {
	return ratio{d.overhead(), 1}, d.available()
}
