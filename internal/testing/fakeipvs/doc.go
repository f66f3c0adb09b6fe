// Package fakeipvs holds stateful fakes of the kernel interfaces IPVS mode uses
// (internal/dataplane/ipvs Kernel): an IPVS table of virtual and real servers, the
// addresses of links, ipsets fed by `ipset restore -exist` text, iptables for both
// families (backed by fakeipt), and sysctls. Each keeps what it was told, as the
// kernel does, so a test can check both what a sync sent and what the node holds.
//
// It imports nothing from the ipvs package, so that package's own tests can use it.
// It is Linux-only, like github.com/moby/ipvs.
package fakeipvs
