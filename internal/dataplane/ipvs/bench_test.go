//go:build linux

package ipvs

import (
	"context"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

// BenchmarkPartialSync measures a one-Service change (one endpoint replaced) against
// fakes of the kernel, at 1,000 and 10,000 Services: the dataplane's own work must
// not grow with the number of Services.
func BenchmarkPartialSync(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			t := &testing.T{}
			f := newFixture(t, proxierOptions{GracefulTimeout: hour})
			for i := 0; i < n; i++ {
				sp := clusterIP(fmt.Sprintf("s%d", i), fmt.Sprintf("10.96.%d.%d", i/250, i%250+1), 80, v1.ProtocolTCP)
				f.snap.ServiceMap[sp.Name] = sp
				f.snap.EndpointMap[sp.Name] = []state.Endpoint{ep(fmt.Sprintf("10.1.%d.%d:8080", i/250, i%250+1), 1)}
			}
			if _, err := f.core.Sync(context.Background(), f.snap, state.ChangeSet{}); err != nil {
				b.Fatal(err)
			}
			name := spName("s7", v1.ProtocolTCP)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e := ep(fmt.Sprintf("10.2.%d.%d:8080", (i/250)%250, i%250+1), 1)
				f.snap.EndpointMap[name] = []state.Endpoint{e}
				c := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{name: {}}}
				if _, err := f.core.Sync(context.Background(), f.snap, c); err != nil {
					b.Fatal(err)
				}
				f.ipvs.TakeWrites()
				f.ipset.ForgetRestores()
			}
		})
	}
}
