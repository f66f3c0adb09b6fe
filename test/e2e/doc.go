// Package e2e runs the real kproxy binary against the real kernel, one network
// namespace per "node", with backends and clients in their own namespaces (see
// internal/testing/netns). Every test runs once per entry of the modes table, so a
// new proxy mode gets the whole suite by adding one entry. Tests need root; CI runs
// them as root, so they are never skipped there.
package e2e
