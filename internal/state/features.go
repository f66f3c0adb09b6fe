package state

// FeatureAllowServiceExternalIPs is kube-proxy's gate for spec.externalIPs
// (KEP-5707: deprecated in 1.36, default true; planned default false in 1.40).
const FeatureAllowServiceExternalIPs = "AllowServiceExternalIPs"

// ExternalIPsAllowed reads the AllowServiceExternalIPs gate from
// KubeProxyConfiguration.featureGates; unset means true, its 1.37 default.
func ExternalIPsAllowed(gates map[string]bool) bool {
	v, ok := gates[FeatureAllowServiceExternalIPs]
	return !ok || v
}
