package healthcheck

import (
	"testing"

	"kproxy.dev/kproxy/internal/state"
)

func TestHealthTouchedOnlyByHealthCheckedPorts(t *testing.T) {
	hc := state.ServicePortName{Namespace: "ns", Name: "lb", Port: "p"}
	plain := state.ServicePortName{Namespace: "ns", Name: "web", Port: "p"}
	prev := &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{
		hc: {HealthCheckNodePort: 32090}, plain: {}}}
	gone := &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{plain: {}}}
	for _, c := range []struct {
		name      string
		prev, cur *state.Snapshot
		ports     []state.ServicePortName
		want      bool
	}{
		{"plain Service changed", prev, prev, []state.ServicePortName{plain}, false},
		{"health-checked Service changed", prev, prev, []state.ServicePortName{plain, hc}, true},
		{"health-checked Service deleted", prev, gone, []state.ServicePortName{hc}, true},
		{"health-checked Service added", gone, prev, []state.ServicePortName{hc}, true},
	} {
		ports := map[state.ServicePortName]struct{}{}
		for _, n := range c.ports {
			ports[n] = struct{}{}
		}
		if got := Touched(c.prev, c.cur, ports); got != c.want {
			t.Errorf("%s: Touched = %v, want %v", c.name, got, c.want)
		}
	}
}
