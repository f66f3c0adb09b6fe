package conntrack

// Fake records the filters it was asked to apply; for dataplane unit tests.
type Fake struct {
	Calls [][]Filter
	Err   error
}

// Delete records filters and returns Err.
func (f *Fake) Delete(filters []Filter) (uint, error) {
	f.Calls = append(f.Calls, append([]Filter(nil), filters...))
	return 0, f.Err
}

// Filters returns every filter recorded, in order.
func (f *Fake) Filters() []Filter {
	var out []Filter
	for _, c := range f.Calls {
		out = append(out, c...)
	}
	return out
}
