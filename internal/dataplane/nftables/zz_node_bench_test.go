package nftables

import "testing"

func BenchmarkZZRenderNode(b *testing.B) {
	o := testOptions(familyIPv4)
	for b.Loop() {
		renderNode(o)
	}
}
