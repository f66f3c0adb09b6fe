package state

// StaleFlow names conntrack state that must go after a sync: UDP (and SCTP) flows to
// a Service address NATed to an endpoint that is no longer reachable, which would
// otherwise keep black-holing the client. The proxier core (internal/dataplane)
// computes them; internal/conntrack turns them into filters.
type StaleFlow struct {
	Port     *ServicePort
	Endpoint Endpoint
}
