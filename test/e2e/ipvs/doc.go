// Package ipvs holds the end-to-end tests of IPVS mode. The host kernel has no IPVS,
// so TestIPVSInVM (host side) compiles this package's tests and the kproxy binary
// statically, boots a Debian kernel under qemu (internal/vm) and runs the
// TestGuest* tests inside it, where they create namespaces, veth pairs, real backend
// servers and send real traffic. Outside the VM the guest tests skip.
package ipvs
