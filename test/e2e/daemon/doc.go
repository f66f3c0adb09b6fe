// Package daemon holds kproxy's end-to-end tests of the daemon: they build the real
// binary (CGO_ENABLED=0) once, run it in userspace mode on manifests they write,
// and send real traffic over loopback sockets. No root is needed: every address is
// in 127.0.0.0/8, each test in a random 127.X.Y.0/24 of its own.
package daemon
